"""The fold: what belongs to no recording, the facts a step reports, and the snapshot's sequence accounting."""

from __future__ import annotations

from processor.core.fold import MISSING_SEQUENCES_LIMIT, Fold, handle, snapshot, tick, track
from processor.core.reorder import ReorderPolicy
from schemas.decode import decode_object
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
