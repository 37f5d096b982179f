"""What the processor does with input records (raw callbacks and ticks): the agent's logic, without Faust.

Given a sid's recording and one record, it returns the recording afterwards and the records to send: derived
events, alerts, and dead letters that keep the original bytes and headers. `Batch` folds many records against
live recordings (a cache of them, else what the table holds) and then says, once per changed sid, what the table
must hold and the latest snapshot to send (a tombstone once the recording is forgotten). The Faust agent only
moves these in and out.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import assert_never

from processor.core.fold import (
    RetentionPolicy,
    Step,
    Tracked,
    handle,
    next_deadline_ms,
    retire,
    skip_reason,
    snapshot,
    tick,
    track,
)
from processor.core.persist import dump, load
from processor.core.reorder import ReorderPolicy
from processor.results import (
    Absent,
    Applied,
    DeadLettered,
    Forgotten,
    Headers,
    Known,
    Outcome,
    Outgoing,
    Result,
    Role,
    Skipped,
    Ticked,
    Written,
)
from schemas.compiled import decode_fast
from schemas.decode import OtherProduct, Rejection
from schemas.derived import DerivedEvent, RecordingErrored, SessionEnded

#: Derived events that also go to the alerts topic, and when.
ALERTS: Mapping[str, Callable[[DerivedEvent], bool]] = {
    "recording_error": lambda event: isinstance(event, RecordingErrored) and event.fatal,
    "session_ended": lambda event: isinstance(event, SessionEnded) and event.summary.exit_status != 0,
    "failover": lambda event: True,
    "slice_discontinuity": lambda event: True,
    "sequence_gap": lambda event: True,
    "session_expired": lambda event: True,
}


def _state_json(tracked: Tracked) -> bytes:
    return snapshot(tracked).model_dump_json().encode()


def _already_in(stored: tuple[int, int] | None, position: tuple[int, int] | None) -> bool:
    # Offsets only compare within a partition (a sid changes partition only if the raw topic is repartitioned).
    return stored is not None and position is not None and stored[0] == position[0] and position[1] <= stored[1]


class Pipeline:
    """The processor's decisions for one sid at a time, under one reorder and one retention policy."""

    def __init__(self, reorder: ReorderPolicy, retention: RetentionPolicy) -> None:
        self.reorder = reorder
        self.retention = retention

    def on_callback(
        self,
        stored: bytes | None,
        key: bytes,
        raw: bytes,
        headers: Headers,
        *,
        now_ms: int,
        position: tuple[int, int] | None = None,
    ) -> Outcome:
        """Fold one raw record into its stored recording; the outcome says what to store and sends its snapshot."""
        result = self.callback(lambda: self.load(stored), key, raw, headers, now_ms=now_ms, position=position)
        return _outcome(result, stored)

    def on_tick(self, stored: bytes | None, key: bytes, *, now_ms: int) -> Outcome:
        """Let time pass for one stored recording; the outcome says what to store and sends its snapshot."""
        return _outcome(self.tick(self.load(stored), key, now_ms=now_ms), stored)

    def callback(
        self,
        recording: Callable[[], Tracked | None],
        key: bytes,
        raw: bytes,
        headers: Headers,
        *,
        now_ms: int,
        position: tuple[int, int] | None = None,
    ) -> Result:
        """Fold one raw record of the ingest into its recording (read only if the record has one, then changed in
        place); `position` is its (partition, offset), if any. The result holds the recording and the derived
        events and alerts, not the snapshot."""
        decoded = decode_fast(raw)
        if isinstance(decoded, Rejection | OtherProduct):
            reason = decoded.reason if isinstance(decoded, Rejection) else f"productId {decoded.product_id}"
            kind = decoded.kind if isinstance(decoded, Rejection) else "other_product"
            dead = Outgoing("dlq", key, raw, (*headers, ("dlq-kind", kind.encode()), ("dlq-reason", reason.encode())))
            return DeadLettered(kind, (dead,))
        skipped = skip_reason(decoded)
        if skipped is not None:  # the console's address check: never a recording
            return Skipped(decoded, skipped)
        sid = decoded.payload.sid
        tracked = recording()
        if tracked is None:
            tracked = track(sid, self.reorder)
        if _already_in(tracked.source_position, position):
            # Re-read after a restart: its effects (and its outputs, delivered before them) are already durable.
            return Skipped(decoded, "reread")
        tracked.source_position = position
        step = handle(tracked, decoded, now_ms=now_ms)
        buffer, sid_key = tracked.buffer, sid.encode()
        return Applied(
            decoded,
            sid_key,
            tracked,
            step,
            self._derived(step.derived, sid_key),
            next_deadline_ms(tracked, self.retention),
            buffer.holds(decoded.payload.uid, decoded.payload.sequence),
            buffer.buffered(),
            tracked.recording.status,
            buffer.last_offer_ms,
        )

    def tick(self, tracked: Tracked | None, key: bytes, *, now_ms: int) -> Result:
        """Let time pass for one recording (changed in place): skip holes past the gap timeout, expire or forget it
        when due."""
        if tracked is None:
            return Absent()
        step = tick(tracked, now_ms=now_ms)
        verdict, retired = retire(tracked, now_ms=now_ms, policy=self.retention)
        merged = Step(
            step.derived + retired.derived, applied=step.applied + retired.applied, gaps=step.gaps + retired.gaps
        )
        outgoing = self._derived(merged.derived, key)
        if verdict != "keep":
            return Forgotten(key, merged, outgoing)
        return Ticked(key, tracked, merged, outgoing, *self._known(tracked))

    def load(self, stored: bytes | None) -> Tracked | None:
        """Return the recording a table value holds (None for none)."""
        return None if stored is None else load(stored, self.reorder)

    def known(self, stored: bytes) -> Known:
        """Return when a stored recording needs its next tick, and its depth, status and last delivery."""
        return self._known(load(stored, self.reorder))

    def _known(self, tracked: Tracked) -> Known:
        buffer = tracked.buffer
        return Known(
            next_deadline_ms(tracked, self.retention), buffer.buffered(), tracked.recording.status, buffer.last_offer_ms
        )

    def describe(self, stored: bytes) -> bytes:
        """Return the RecordingState JSON of a stored recording (what the state topic and the query API show)."""
        return _state_json(load(stored, self.reorder))

    @staticmethod
    def _derived(events: list[DerivedEvent], key: bytes) -> list[Outgoing]:
        outgoing: list[Outgoing] = []
        for event in events:
            value = event.model_dump_json().encode()
            outgoing.append(Outgoing("events", key, value))
            alert = ALERTS.get(event.kind)  # type: ignore[attr-defined]  # every concrete event has a kind
            if alert is not None and alert(event):
                outgoing.append(Outgoing("alerts", key, value))
        return outgoing


def _outcome(result: Result, stored: bytes | None) -> Outcome:
    match result:
        case Applied() | Ticked():
            tracked = result.tracked
            return Outcome(
                result, dump(tracked), [*result.outgoing, Outgoing("state", result.key, _state_json(tracked))]
            )
        case Forgotten():
            return Outcome(result, None, [*result.outgoing, Outgoing("state", result.key, None)])
        case Skipped() | DeadLettered() | Absent():
            return Outcome(result, stored, list(result.outgoing))
        case _:
            assert_never(result)


@dataclass(frozen=True, slots=True)
class Write:
    """One changed sid at the end of a batch: what its table key must hold (None: delete) and its snapshot."""

    key: bytes
    stored: bytes | None
    state: Outgoing


class InFlight:
    """The newest write of each table key whose batch has not ended in the table yet (its outputs await their acks).

    Batches end in order, so a key is here exactly while the table holds an older recording than the one sent: the
    query API answers the snapshot from here (never behind the state topic), and the cache keeps the live recording.
    """

    def __init__(self) -> None:
        self._writes: dict[bytes, Write] = {}

    def sent(self, writes: Iterable[Write]) -> None:
        """Note a closed batch's writes: their snapshots are on their way to the state topic."""
        for write in writes:
            self._writes[write.key] = write

    def stored(self, write: Write) -> None:
        """Note that the table holds `write`; its key leaves unless a later batch changed it again."""
        if self._writes.get(write.key) is write:
            del self._writes[write.key]

    def get(self, key: bytes) -> Write | None:
        """Return the newest write of `key` not in the table yet, if any."""
        return self._writes.get(key)

    def keys(self) -> list[bytes]:
        """Return the keys whose newest write has not reached the table yet."""
        return list(self._writes)

    def __contains__(self, key: object) -> bool:
        return key in self._writes

    def __len__(self) -> int:
        return len(self._writes)


class Batch:
    """Records folded in order against live recordings; at the end, one table value and snapshot per changed sid.

    `cache` holds live recordings by table key, each equal to what the table holds for it between batches (the
    caller empties it whenever that may no longer be true: a rebalance, a recovery); a key it lacks is read with
    `read` (the table). A recording changed by the batch is kept aside until `writes`, so a later record of the
    same batch finds it, forgotten ones included.
    """

    def __init__(
        self, pipeline: Pipeline, cache: MutableMapping[bytes, Tracked], read: Callable[[bytes], bytes | None]
    ) -> None:
        self.pipeline = pipeline
        self.cache = cache
        self.read = read
        self.changed: dict[bytes, Written] = {}

    def callback(
        self, key: bytes, raw: bytes, headers: Headers, *, now_ms: int, position: tuple[int, int] | None = None
    ) -> Result:
        """Fold one raw record (see `Pipeline.callback`)."""
        result = self.pipeline.callback(
            lambda: self._recording(key), key, raw, headers, now_ms=now_ms, position=position
        )
        return self._note(key, result)

    def tick(self, key: bytes, *, now_ms: int) -> Result:
        """Let time pass for one recording (see `Pipeline.tick`)."""
        return self._note(key, self.pipeline.tick(self._recording(key), key, now_ms=now_ms))

    def writes(self) -> list[Write]:
        """Return each changed sid's table value and snapshot, and keep its live recording in the cache."""
        writes = []
        for key, result in self.changed.items():
            self.cache.pop(key, None)  # last changed last: `trim` drops the least recently changed first
            match result:
                case Applied() | Ticked():
                    tracked = self.cache[key] = result.tracked
                    writes.append(Write(key, dump(tracked), Outgoing("state", result.key, _state_json(tracked))))
                case Forgotten():
                    writes.append(Write(key, None, Outgoing("state", result.key, None)))
                case _:
                    assert_never(result)
        return writes

    def _recording(self, key: bytes) -> Tracked | None:
        changed = self.changed.get(key)
        if changed is not None:
            return None if isinstance(changed, Forgotten) else changed.tracked
        cached = self.cache.get(key)
        return cached if cached is not None else self.pipeline.load(self.read(key))

    def _note(self, key: bytes, result: Result) -> Result:
        match result:
            case Applied() | Ticked() | Forgotten():
                self.changed.pop(key, None)  # last changed last: the writes follow the order of the last changes
                self.changed[key] = result
            case Skipped() | DeadLettered() | Absent():
                pass
            case _:
                assert_never(result)
        return result


def trim(
    cache: MutableMapping[bytes, Tracked], limit: int, *, idle_since_ms: int | None = None, keep: Container[bytes] = ()
) -> None:
    """Drop the least recently changed live recordings beyond `limit`, then those without a delivery since
    `idle_since_ms`: the table holds them, so an idle recording costs its stored bytes only. Recordings in `keep`
    (newer than what the table holds yet) stay."""
    excess = len(cache) - limit
    dropped: list[bytes] = []
    for key, tracked in cache.items():  # least recently changed first
        if excess <= len(dropped) and (idle_since_ms is None or tracked.buffer.last_offer_ms >= idle_since_ms):
            break
        if key not in keep:
            dropped.append(key)
    for key in dropped:
        del cache[key]


__all__ = [  # the results are part of the pipeline's interface
    "Absent",
    "Applied",
    "Batch",
    "DeadLettered",
    "Forgotten",
    "Headers",
    "InFlight",
    "Known",
    "Outcome",
    "Outgoing",
    "Pipeline",
    "Result",
    "Role",
    "Skipped",
    "Ticked",
    "Write",
    "Written",
    "trim",
]
