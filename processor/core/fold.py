"""The fold: reorder, then apply. The one code path the agent, `replay` and the tests all run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec

from processor.core import codes
from processor.core.machine import Recipe, Recipes, Recording, apply_into, event_ms, summary
from processor.core.reorder import (
    HELD,
    LATE,
    LEFT_FOR_OFFER,
    NEXT_IN_LINE,
    Delivered,
    Gap,
    Released,
    ReorderBuffer,
    ReorderPolicy,
    SequenceSet,
)
from schemas.callbacks import CLOUD_RECORDING_PRODUCT_ID
from schemas.compiled import AnyCallback
from schemas.derived import SCHEMA_VERSION, DerivedEvent, SequenceGapDetected, SessionExpired, event_id, trusted
from schemas.state import RecordingState, StreamState

#: The console's address check sends signed test events on this channel (spec README): never a recording.
CONSOLE_CHECK_CHANNEL = "test_webhook"
#: `missing_sequences` lists at most this many numbers (a bogus huge `sequence` must not blow up a snapshot).
MISSING_SEQUENCES_LIMIT = 10_000

SkipReason = Literal["other_product", "console_check"]
T = TypeVar("T")


@dataclass(slots=True)
class Tracked:
    """One recording as the processor keeps it: its facts and its reorder buffer."""

    recording: Recording
    buffer: ReorderBuffer
    #: (partition, offset) of the latest raw record this state includes, when read from a log that has them:
    #: after a crash the log is re-read from the last committed offset, and records up to here are already in.
    source_position: tuple[int, int] | None = None


class Step(msgspec.Struct, eq=False, gc=False):  # one per delivery: builds in a third of a dataclass's time
    """What one delivery (or one tick) did: the derived events, and facts for metrics.

    `Step(events, ...)` takes built events; the fold passes `recipes` instead, built on first reading of
    `derived` (a state rebuild, or `replay --summary`, never reads them).
    """

    events: list[DerivedEvent] | None = None
    duplicate: bool = False
    #: Callbacks applied (in order or late).
    applied: int = 0
    late: int = 0
    gaps: int = 0
    recipes: Recipes | None = None

    @property
    def derived(self) -> list[DerivedEvent]:
        """Return the derived events, in order (built once, then the same list)."""
        events = self.events
        if events is None:
            events = self.events = [recipe() for recipe in self.recipes or ()]  # build(recipe), inline
            self.recipes = None
        return events

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return _facts(self) == _facts(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value


def _facts(step: Step) -> tuple[Any, ...]:
    return step.derived, step.duplicate, step.applied, step.late, step.gaps


def track(sid: str, policy: ReorderPolicy | None = None) -> Tracked:
    """Start tracking a recording never seen before."""
    return Tracked(Recording(sid), ReorderBuffer(policy or ReorderPolicy()))


def skip_reason(callback: AnyCallback) -> SkipReason | None:
    """Say why a callback is not part of any recording, or None if it is."""
    if callback.productId != CLOUD_RECORDING_PRODUCT_ID:
        return "other_product"
    if callback.payload.cname == CONSOLE_CHECK_CHANNEL:
        return "console_check"
    return None


def handle(tracked: Tracked, callback: AnyCallback, *, now_ms: int) -> Step:
    """Offer one delivery to the buffer, apply what it releases, and skip holes that waited too long."""
    return _handle(tracked, callback, now_ms)


def _handle(tracked: Tracked, callback: AnyCallback, now_ms: int) -> Step:
    # `handle`, with positional arguments: a call with a keyword costs more, and `Fold.receive` makes one per delivery.
    buffer = tracked.buffer
    taken = buffer.take(callback, now_ms)
    if taken == LEFT_FOR_OFFER:
        return handle_released(tracked, callback, now_ms=now_ms)
    # The common cases (every delivery of the benchmark's noisy stream: all but full lanes and failover notices
    # whose new uid already holds callbacks), applied without a Released list: what `handle_released` does
    # with what `offer` would have released.
    recording = tracked.recording
    recipes: Recipes
    if taken == NEXT_IN_LINE:
        recipes = []
        apply_into(recording, callback, False, recipes)
        step = Step(applied=1, recipes=recipes)
    elif taken == HELD:
        step = Step()
    elif type(taken) is list:  # a run, from this callback on
        recipes = []
        for released in taken:
            apply_into(recording, released, False, recipes)
        step = Step(applied=len(taken), recipes=recipes)
    elif taken == LATE:
        recipes = []
        apply_into(recording, callback, True, recipes)
        recording.late_events += 1
        step = Step(applied=1, late=1, recipes=recipes)
    else:
        recording.duplicates += 1
        return Step(duplicate=True)
    if buffer.clock_ms >= buffer.expires_at_ms:  # buffer.expiry_due(), inline: asked on every delivery
        _add(step, _apply_released(recording, buffer.expire(now_ms)))
    return step


def handle_released(tracked: Tracked, callback: AnyCallback, *, now_ms: int) -> Step:
    """Do what `handle` does, through `ReorderBuffer.offer` and the list of what it releases, whatever the case.

    The general path, and the reference for `handle`'s shortcut (a property test checks they agree).
    """
    buffer = tracked.buffer
    released = buffer.offer(callback, now_ms)
    if released is None:
        tracked.recording.duplicates += 1
        return Step(duplicate=True)
    if buffer.expiry_due():  # else no hole is old enough, and `expire` would release nothing
        released += buffer.expire(now_ms)
    return _apply_released(tracked.recording, released)


def _add(step: Step, more: Step) -> None:
    """Append what `more` applied and derived to `step` (both still unbuilt)."""
    step.applied += more.applied
    step.late += more.late
    step.gaps += more.gaps
    if more.recipes:
        step.recipes = (step.recipes or []) + more.recipes


def tick(tracked: Tracked, *, now_ms: int) -> Step:
    """Let time pass without a delivery: skip holes older than the gap timeout."""
    return _apply_released(tracked.recording, tracked.buffer.expire(now_ms))


def finish(tracked: Tracked) -> Step:
    """End of input: release everything still buffered, in order, reporting each hole."""
    return _apply_released(tracked.recording, tracked.buffer.drain())


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long a recording is kept without deliveries: an open one then expires, an ended one is removed."""

    #: A recording that never sent `session_exit` is given up on after this long without a delivery.
    inactivity_timeout_ms: int = 6 * 3_600_000
    #: An ended recording is forgotten this long after its last delivery (late files still fold in meanwhile).
    ended_retention_ms: int = 3_600_000


Verdict = Literal["keep", "expired", "removed"]


def retire(tracked: Tracked, *, now_ms: int, policy: RetentionPolicy) -> tuple[Verdict, Step]:
    """Decide whether to forget a recording: ended and retained long enough, or silent past the inactivity timeout.

    An expiring recording first releases what it still holds (as at end of input), then emits `session_expired`.
    """
    rec, idle_ms = tracked.recording, now_ms - tracked.buffer.last_offer_ms
    if rec.ended:
        return ("removed" if idle_ms >= policy.ended_retention_ms else "keep"), Step()
    if idle_ms < policy.inactivity_timeout_ms:
        return "keep", Step()
    drained = finish(tracked)
    if rec.ended:  # what was held included its session_exit: it ended rather than expired
        return "removed", drained
    last_sequence = max((lane.received().highest() or 0 for lane in tracked.buffer.lanes.values()), default=0)
    expired = SessionExpired(
        event_id=event_id(rec.sid, rec.uid, last_sequence, SessionExpired.kind_name()),
        sid=rec.sid,
        cname=rec.cname,
        uid=rec.uid,
        at_ms=rec.last_event_ms or 0,
        idle_ms=idle_ms,
        summary=summary(rec, rec.last_event_ms or 0),
    )
    drained.derived.append(expired)
    return "expired", drained


def next_deadline_ms(tracked: Tracked, policy: RetentionPolicy) -> int:
    """Return when `tick` or `retire` next has something to do for this recording, if nothing arrives."""
    keep_ms = policy.ended_retention_ms if tracked.recording.ended else policy.inactivity_timeout_ms
    retire_at = tracked.buffer.last_offer_ms + keep_ms
    gap_at = tracked.buffer.gap_deadline_ms()
    return retire_at if gap_at is None else min(gap_at, retire_at)


def _apply_released(recording: Recording, released: Released) -> Step:
    if not released:  # held behind a hole: four deliveries in ten of a noisy stream
        return Step()
    recipes: Recipes = []
    applied = late = gaps = 0
    for item in released:
        if type(item) is Delivered:
            apply_into(recording, item.callback, item.late, recipes)
            applied += 1
            late += item.late
        else:
            recipes.append(_gap_event(recording, item))  # type: ignore[arg-type]  # not Delivered: a Gap
            gaps += 1
    if late or gaps:
        recording.late_events += late
        recording.gaps += gaps
    return Step(applied=applied, late=late, gaps=gaps, recipes=recipes)


def _gap_event(recording: Recording, gap: Gap) -> Recipe:
    sid, cname, at_ms = recording.sid, recording.cname or gap.next_callback.payload.cname, event_ms(gap.next_callback)
    return lambda: SequenceGapDetected.of(
        sid=sid,
        cname=cname,
        uid=gap.uid,
        at_ms=at_ms,
        missing_from=gap.missing_from,
        missing_to=gap.missing_to,
        reason=gap.reason,
    )


@dataclass(slots=True)
class Fold:
    """Many recordings folded side by side, keyed by sid: what `replay` and the tests drive."""

    policy: ReorderPolicy = field(default_factory=ReorderPolicy)
    recordings: dict[str, Tracked] = field(default_factory=dict)
    skipped: dict[SkipReason, int] = field(default_factory=dict)

    def receive(self, callback: AnyCallback, *, now_ms: int) -> Step:
        """Fold one delivery into its recording (skipping, and counting, what belongs to none)."""
        payload = callback.payload
        tracked = self.recordings.get(payload.sid)
        if (
            tracked is None
            or callback.productId != CLOUD_RECORDING_PRODUCT_ID
            or payload.cname == CONSOLE_CHECK_CHANNEL
        ):
            # The rare cases, in one test on the way: a new recording, or none.
            reason = skip_reason(callback)
            if reason is not None:
                self.skip(reason)
                return Step()
            tracked = self.recordings[payload.sid] = track(payload.sid, self.policy)
        return _handle(tracked, callback, now_ms)

    def skip(self, reason: SkipReason) -> None:
        """Count a delivery that belongs to no recording."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def finish(self) -> list[DerivedEvent]:
        """Flush every recording's buffer; return what that derives."""
        return [event for tracked in self.recordings.values() for event in finish(tracked).derived]

    def snapshots(self) -> list[RecordingState]:
        """Return every recording's snapshot, by sid."""
        return [snapshot(self.recordings[sid]) for sid in sorted(self.recordings)]


def delivery_clock_ms(callback: AnyCallback) -> int:
    """Return the time a delivery stands for when no wall clock is at hand: NCS's `notifyMs` (else `sendts`)."""
    return callback.notifyMs if callback.notifyMs is not None else event_ms(callback)


def fold_all(callbacks: Iterable[AnyCallback], policy: ReorderPolicy | None = None) -> Fold:
    """Fold deliveries in arrival order, using each one's `notifyMs` as the clock, then flush."""
    fold = Fold(policy or ReorderPolicy())
    for callback in callbacks:
        fold.receive(callback, now_ms=delivery_clock_ms(callback))
    fold.finish()
    return fold


def snapshot(tracked: Tracked) -> RecordingState:
    """Describe one recording as a RecordingState."""
    rec, buffer = tracked.recording, tracked.buffer
    received = _union(lane.received() for lane in buffer.lanes.values())
    # Every value below is already of its field's type (a unit test proves the model equals the validated one):
    # validating a snapshot cost more than folding the recording's callbacks did. Field order is the model's.
    fields = {
        "sid": rec.sid,
        "cname": rec.cname,
        "status": rec.status,
        "uid": rec.uid,
        "failovers": len(rec.failovers),
        "discontinuities": len(rec.discontinuities),
        "discontinuity_ms": rec.discontinuity_ms,
        "files": tuple(sorted(rec.files)),
        "duplicates": rec.duplicates,
        "missing_sequences": _missing(received),
        "last_sequence": received.highest(),
        "exit_status": rec.exit_status[1] if rec.exit_status else None,
        "fatal_errors": rec.fatal_errors,
        "schema_version": SCHEMA_VERSION,
        "status_name": codes.STATUS_NAMES.get(rec.status, f"status_{rec.status}"),
        "uids": _uid_history(rec),
        "failover_history": tuple(rec.failovers),
        "discontinuities_by_track": _by_track(rec),
        "file_details": tuple(info for _, (_, info) in sorted(rec.files.items())),
        "streams": tuple(
            trusted(
                StreamState,
                {"stream_uid": stream_uid, "media": media, "receiving": receiving, "changed_at_ms": changed_at},
            )
            for media, streams in sorted(rec.streams.items())
            for stream_uid, (_, receiving, changed_at) in sorted(streams.items())
        ),
        "upload_progress": _value(rec.upload_progress),
        "recording_mode": _value(rec.recording_mode),
        "errors": rec.errors,
        "warnings": rec.warnings,
        "last_error": _value(rec.last_error),
        "last_warning": _value(rec.last_warning),
        "leave_code": _value(rec.leave_code),
        "leave_reasons": codes.leave_reasons(rec.leave_code[1]) if rec.leave_code else (),
        "vod_video_id": _value(rec.vod_video_id),
        "vod_triggered": rec.vod_triggered,
        "unknown_events": rec.unknown_events,
        "first_event_ms": rec.first_event_ms,
        "last_event_ms": rec.last_event_ms,
        "ended": rec.ended,
        "events_applied": rec.events_applied,
        "gaps": rec.gaps,
        "late_events": rec.late_events,
        "buffered": buffer.buffered(),
    }
    return trusted(RecordingState, fields)


def _value(entry: tuple[object, T] | None) -> T | None:
    return entry[1] if entry is not None else None


def _union(sets: Iterable[SequenceSet]) -> SequenceSet:
    """Merge the received numbers of every lane into one set of ranges."""
    merged: list[list[int]] = []
    for low, high in sorted((low, high) for numbers in sets for low, high in numbers.ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return SequenceSet(merged)


def _missing(received: SequenceSet) -> tuple[int, ...]:
    """List the numbers below the highest received that never arrived (at most MISSING_SEQUENCES_LIMIT)."""
    missing: list[int] = []
    expected = 0
    for low, high in received.ranges:
        room = MISSING_SEQUENCES_LIMIT - len(missing)
        missing.extend(range(expected, min(low, expected + room)))
        expected = high + 1
    return tuple(missing)


def _uid_history(rec: Recording) -> tuple[str, ...]:
    uids = [rec.first_uid[1]] if rec.first_uid else []
    for record in rec.failovers:
        uids += [record.old_uid, record.new_uid]
    return tuple(dict.fromkeys(uid for uid in uids if uid))


def _by_track(rec: Recording) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stream_uid, track_type, _, _ in sorted(rec.discontinuities):  # a set: sort, or the hash seed decides
        name = f"{stream_uid}/{track_type}"
        counts[name] = counts.get(name, 0) + 1
    return counts
