"""The fold: what belongs to no recording, the facts a step reports, and the snapshot's sequence accounting."""

from __future__ import annotations

from processor.core.fold import (
    MISSING_SEQUENCES_LIMIT,
    Fold,
    RetentionPolicy,
    Step,
    handle,
    next_deadline_ms,
    retire,
    snapshot,
    tick,
    track,
)
from processor.core.reorder import ReorderPolicy
from schemas.decode import decode_object
from schemas.derived import SessionExpired
from tests.unit.builders import SID, T0, body, callback, progress


def test_the_consoles_address_check_is_skipped_and_counted_never_a_recording():
    check = body(40, 0)
    check["payload"].update(cname="test_webhook", uid="12121212")
    fold = Fold()
    step = fold.receive(decode_object(check), now_ms=T0)  # type: ignore[arg-type]
    assert step.derived == []
    assert fold.recordings == {}
    assert fold.skipped == {"console_check": 1}


def test_a_step_reports_what_it_applied_and_what_it_gave_up_on():
    tracked = track(SID, ReorderPolicy(gap_timeout_ms=1_000))
    assert handle(tracked, progress(0), now_ms=T0).applied == 1
    held = handle(tracked, progress(2), now_ms=T0)
    assert (held.applied, held.gaps) == (0, 0)
    skipped = tick(tracked, now_ms=T0 + 1_000)
    assert (skipped.applied, skipped.gaps, skipped.late) == (1, 1, 0)
    late = handle(tracked, progress(1), now_ms=T0 + 2_000)
    assert (late.applied, late.late) == (1, 1)
    assert late.derived[0].late
    state = snapshot(tracked)
    assert (state.gaps, state.late_events, state.missing_sequences, state.last_sequence) == (1, 1, (), 2)


def test_missing_sequences_count_a_number_received_under_any_uid():
    tracked = track(SID)
    for delivery in (progress(0), progress(3), callback(12, 4, {"newUid": 2002}), progress(1, uid="2002")):
        handle(tracked, delivery, now_ms=T0)
    state = snapshot(tracked)
    # Held: 3 and the notice (4) behind the hole at 1..2; the new uid's 1 (its lane starts at 0 or 5).
    assert (state.missing_sequences, state.last_sequence, state.buffered) == ((2,), 4, 3)


def test_missing_sequences_are_listed_up_to_a_bound_whatever_number_arrives():
    tracked = track(SID)
    handle(tracked, progress(10**9), now_ms=T0)
    state = snapshot(tracked)
    assert state.last_sequence == 10**9
    assert len(state.missing_sequences) == MISSING_SEQUENCES_LIMIT
    assert state.missing_sequences[:3] == (0, 1, 2)


RETENTION = RetentionPolicy(inactivity_timeout_ms=60_000, ended_retention_ms=10_000)


def test_an_open_recording_is_kept_until_the_inactivity_timeout_then_expires_with_a_summary():
    tracked = track(SID)
    handle(tracked, callback(40, 0), now_ms=T0)
    handle(tracked, progress(2), now_ms=T0 + 5_000)  # held behind the hole at 1
    assert retire(tracked, now_ms=T0 + 64_999, policy=RETENTION) == ("keep", Step())
    verdict, step = retire(tracked, now_ms=T0 + 65_000, policy=RETENTION)
    assert verdict == "expired"
    gap, progressed, expired = step.derived
    assert (gap.kind, progressed.kind) == ("sequence_gap", "upload_progress")  # what it held is released first
    assert isinstance(expired, SessionExpired)
    assert expired.event_id == f"{SID}:1001:2:session_expired"
    assert (expired.idle_ms, expired.summary.status, expired.summary.exit_status) == (60_000, 4, None)


def test_an_ended_recording_is_removed_after_its_retention_without_another_event():
    tracked = track(SID)
    for number, event_type in enumerate((40, 11)):
        handle(tracked, callback(event_type, number, {"exitStatus": 0}), now_ms=T0)
    assert retire(tracked, now_ms=T0 + 9_999, policy=RETENTION)[0] == "keep"
    assert retire(tracked, now_ms=T0 + 10_000, policy=RETENTION) == ("removed", Step())


def test_a_recording_whose_held_callbacks_include_its_exit_ends_rather_than_expires():
    tracked = track(SID)
    handle(tracked, callback(40, 0), now_ms=T0)
    handle(tracked, callback(11, 2, {"exitStatus": 0}), now_ms=T0)
    verdict, step = retire(tracked, now_ms=T0 + 60_000, policy=RETENTION)
    assert verdict == "removed"
    assert [event.kind for event in step.derived] == ["sequence_gap", "status_changed", "session_ended"]


def test_the_next_deadline_is_the_oldest_holes_timeout_else_the_retention():
    tracked = track(SID, ReorderPolicy(gap_timeout_ms=30_000))
    handle(tracked, progress(0), now_ms=T0)
    assert next_deadline_ms(tracked, RETENTION) == T0 + 60_000
    handle(tracked, progress(2), now_ms=T0 + 1_000)
    assert next_deadline_ms(tracked, RETENTION) == T0 + 31_000
    handle(tracked, progress(1), now_ms=T0 + 2_000)
    assert next_deadline_ms(tracked, RETENTION) == T0 + 62_000


def test_derived_events_are_built_only_when_read_from_what_their_own_callback_told():
    tracked = track(SID)
    first = handle(tracked, callback(12, 0, {"msgName": "session_failover", "newUid": 2002}), now_ms=T0)
    assert first.events is None  # a recipe each, nothing built
    handle(tracked, callback(12, 1, {"msgName": "session_failover", "newUid": 3003}, uid="2002"), now_ms=T0)
    handle(tracked, progress(2, uid="3003"), now_ms=T0)
    # Read after the recording moved on: still the first failover, as the recording stood then.
    (failed_over,) = first.derived
    assert (failed_over.new_uid, failed_over.failovers, failed_over.sequence, failed_over.cname) == (
        "2002",
        1,
        0,
        "room",
    )
    assert first.derived is first.derived  # built once
