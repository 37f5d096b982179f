"""What the processor does with one input record (a raw callback or a tick): the agent's logic, without Faust.

Given what the table holds for a sid and one record, it returns what the table must hold afterwards and the
records to send: derived events, the latest snapshot (a tombstone once the recording is forgotten), alerts, and
dead letters that keep the original bytes and headers. The Faust agent only moves these in and out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
from schemas.callbacks import Callback
from schemas.decode import OtherProduct, Rejection, decode
from schemas.derived import DerivedEvent, RecordingErrored, SessionEnded

Role = Literal["events", "state", "alerts", "dlq"]
Headers = Sequence[tuple[str, bytes]]

#: Derived events that also go to the alerts topic, and when.
ALERTS: Mapping[str, Callable[[DerivedEvent], bool]] = {
    "recording_error": lambda event: isinstance(event, RecordingErrored) and event.fatal,
    "session_ended": lambda event: isinstance(event, SessionEnded) and event.summary.exit_status != 0,
    "failover": lambda event: True,
    "slice_discontinuity": lambda event: True,
    "sequence_gap": lambda event: True,
    "session_expired": lambda event: True,
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send; `value` None is a tombstone (the state of a forgotten recording)."""

    role: Role
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class Result:
    """What one input record did."""

    #: What the table must hold for the sid afterwards; None to delete it.
    stored: bytes | None
    outgoing: list[Outgoing] = field(default_factory=list)
    step: Step = field(default_factory=Step)
    #: The callback behind it (None for ticks and dead letters), for metrics.
    callback: Callback | None = None
    #: Why the record went to the dead-letter topic (a Rejection kind or "other_product").
    dead_letter: str | None = None
    #: When to tick this sid next if nothing arrives; None once it is forgotten.
    deadline_ms: int | None = None
    #: False when the table is left as it was (dead letters, skipped records, ticks of forgotten sids).
    write: bool = True
    #: The callback was held behind a missing number rather than applied at once (an out-of-order arrival).
    held: bool = False
    #: The record was re-read after a restart and was already part of the stored state.
    reread: bool = False
    #: Callbacks the recording still holds, and its status; None once it is forgotten.
    buffered: int = 0
    status: int | None = None
    #: When the recording last received a delivery (Unix ms, the worker's clock), for the idle gauge.
    last_delivery_ms: int = 0


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
    ) -> Result:
        """Fold one raw record of the ingest into its recording; `position` is its (partition, offset), if any."""
        decoded = decode(raw)
        if isinstance(decoded, Rejection | OtherProduct):
            reason = decoded.reason if isinstance(decoded, Rejection) else f"productId {decoded.product_id}"
            kind = decoded.kind if isinstance(decoded, Rejection) else "other_product"
            dead = Outgoing("dlq", key, raw, (*headers, ("dlq-kind", kind.encode()), ("dlq-reason", reason.encode())))
            return Result(stored, [dead], write=False, dead_letter=kind)
        if skip_reason(decoded) is not None:  # the console's address check: never a recording
            return Result(stored, write=False, callback=decoded)
        sid = decoded.payload.sid
        tracked = load(stored, self.reorder) if stored is not None else track(sid, self.reorder)
        if _already_in(tracked.source_position, position):
            # Re-read after a restart: its effects (and its outputs, queued before them) are already durable.
            return Result(stored, write=False, callback=decoded, reread=True)
        tracked.source_position = position
        step = handle(tracked, decoded, now_ms=now_ms)
        result = self._result(tracked, step, sid.encode(), callback=decoded)
        result.held = tracked.buffer.holds(decoded.payload.uid, decoded.payload.sequence)
        return result

    def on_tick(self, stored: bytes | None, key: bytes, *, now_ms: int) -> Result:
        """Let time pass for one recording: skip holes past the gap timeout, expire or forget it when due."""
        if stored is None:
            return Result(None, write=False)
        tracked = load(stored, self.reorder)
        step = tick(tracked, now_ms=now_ms)
        verdict, retired = retire(tracked, now_ms=now_ms, policy=self.retention)
        merged = Step(
            step.derived + retired.derived, applied=step.applied + retired.applied, gaps=step.gaps + retired.gaps
        )
        if verdict == "keep":
            return self._result(tracked, merged, key)
        outgoing = [*self._derived(merged.derived, key), Outgoing("state", key, None)]
        return Result(None, outgoing, merged)

    def describe(self, stored: bytes) -> bytes:
        """Return the RecordingState JSON of a stored recording (what the state topic and the query API show)."""
        return _state_json(load(stored, self.reorder))

    def _result(self, tracked: Tracked, step: Step, key: bytes, *, callback: Callback | None = None) -> Result:
        outgoing = self._derived(step.derived, key)
        outgoing.append(Outgoing("state", key, _state_json(tracked)))
        deadline = next_deadline_ms(tracked, self.retention)
        result = Result(dump(tracked), outgoing, step, callback=callback, deadline_ms=deadline)
        result.buffered, result.status = tracked.buffer.buffered(), tracked.recording.status
        result.last_delivery_ms = tracked.buffer.last_offer_ms
        return result

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
