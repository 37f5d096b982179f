"""What this worker knows of the recordings it processed, for the tick timer, the gauges and GET /recordings/."""

from __future__ import annotations

from typing import assert_never

from processor.pipeline import Applied, Forgotten, Ticked, Written


class LocalView:
    """When each local recording needs a tick, its depth, status and last delivery.

    Not durable: after a restart or rebalance `rescan` makes the timer tick every local recording once, and each
    tick's result fills this in again.
    """

    def __init__(self) -> None:
        self.deadlines: dict[bytes, int] = {}
        self.buffered: dict[bytes, int] = {}
        self.status: dict[bytes, int] = {}
        self.last_delivery: dict[bytes, int] = {}
        self.rescan = True

    def clear(self) -> None:
        """Forget everything (a new assignment): the rescan's ticks fill it in again with what is ours."""
        for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
            known.clear()
        self.rescan = True

    def note(self, key: bytes, result: Written) -> None:
        """Remember what one result says of its recording (or forget a forgotten one)."""
        match result:
            case Applied() | Ticked():
                self.deadlines[key] = result.deadline_ms
                self.buffered[key] = result.buffered
                self.status[key] = result.status
                self.last_delivery[key] = result.last_delivery_ms
            case Forgotten():
                for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
                    known.pop(key, None)
            case _:
                assert_never(result)

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
