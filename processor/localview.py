"""What this worker knows of the recordings it processed, for the tick timer, the gauges and GET /recordings/."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import assert_never

from processor.pipeline import Applied, Forgotten, Known, Ticked, Written

#: Recordings read from the table between two yields to the event loop while the view is filled.
FILL_CHUNK = 1000
log = logging.getLogger(__name__)


class LocalView:
    """When each local recording needs a tick, its depth, status and last delivery.

    Not durable: after an assignment it is empty and not `complete` until `fill` has read what the table holds of
    every local recording; records processed meanwhile are noted as usual, and are newer than the table.
    """

    def __init__(self) -> None:
        self.deadlines: dict[bytes, int] = {}
        self.buffered: dict[bytes, int] = {}
        self.status: dict[bytes, int] = {}
        self.last_delivery: dict[bytes, int] = {}
        #: Whether it knows every local recording (False from an assignment until `fill` has run to its end).
        self.complete = False
        #: Bumped by every `clear`: a `fill` begun before one stops.
        self.epoch = 0

    def clear(self) -> None:
        """Forget everything (a new assignment): `fill` reads what is ours again."""
        for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
            known.clear()
        self.complete = False
        self.epoch += 1

    def note(self, key: bytes, result: Written) -> None:
        """Remember what one result says of its recording (or forget a forgotten one)."""
        match result:
            case Applied() | Ticked():
                self._remember(key, Known(result.deadline_ms, result.buffered, result.status, result.last_delivery_ms))
            case Forgotten():
                for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
                    known.pop(key, None)
            case _:
                assert_never(result)

    async def fill(self, keys: Sequence[bytes], read: Callable[[bytes], Known | None]) -> None:
        """Learn what is stored of `keys` (every local recording), a chunk at a time, then be `complete`.

        `read` answers the newest stored value (a batch's that has not reached the table yet, else the table's).
        Skips the keys noted since the assignment: a record told newer news. Records are processed between chunks;
        an assignment meanwhile stops it (the caller starts again).
        """
        epoch, started = self.epoch, time.perf_counter()
        for first in range(0, len(keys), FILL_CHUNK):
            if self.epoch != epoch:
                return
            for key in keys[first : first + FILL_CHUNK]:
                if key not in self.status:
                    known = read(key)
                    if known is not None:  # forgotten meanwhile
                        self._remember(key, known)
            await asyncio.sleep(0)
        self.complete = True
        log.info("local view filled from the table: %d recordings in %.2f s", len(keys), time.perf_counter() - started)

    def page(self, *, status: int | None, after: bytes, limit: int) -> list[bytes]:
        """Return up to `limit` sids after `after`, in order, of the given status (any if None)."""
        keys = sorted(key for key, known in self.status.items() if key > after and status in (None, known))
        return keys[:limit]

    def due(self, now_ms: int) -> list[bytes]:
        """Return (and unschedule) the recordings whose deadline has come."""
        keys = [key for key, due in self.deadlines.items() if due <= now_ms]
        for key in keys:
            del self.deadlines[key]
        return keys

    def _remember(self, key: bytes, known: Known) -> None:
        self.deadlines[key] = known.deadline_ms
        self.buffered[key] = known.buffered
        self.status[key] = known.status
        self.last_delivery[key] = known.last_delivery_ms
