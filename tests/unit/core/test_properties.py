"""Properties of the fold over realistic generated sessions: order, duplicates, lateness and failovers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core import codes
from processor.core.fold import Fold, fold_all, handle, snapshot, tick, track
from processor.core.reorder import Delivered, ReorderBuffer
from schemas.decode import decode_object
from schemas.derived import DERIVED_EVENT_ADAPTER, DerivedEvent, SessionEnded, StatusChanged
from schemas.state import DELIVERY_FIELDS, RecordingState
from tests.unit.strategies import arriving, sessions, shapes


def facts(state: RecordingState) -> dict[str, Any]:
    """The recording's truth, without the statistics of how it was delivered."""
    return state.model_dump(exclude=DELIVERY_FIELDS)


def without_duplicate_count(event: DerivedEvent) -> DerivedEvent:
    """`session_ended` reports the duplicates seen so far: the one delivery statistic a derived event carries."""
    if isinstance(event, SessionEnded):
        return event.model_copy(update={"summary": event.summary.model_copy(update={"duplicates": 0})})
    return event


def only(fold: Fold) -> RecordingState:
    (state,) = fold.snapshots()
    return state


@settings(max_examples=80, deadline=None)
@given(session=sessions(), data=st.data())
def test_delivery_order_does_not_change_the_outcome(session, data):
    shuffled = data.draw(st.permutations(session))
    assert facts(only(fold_all(arriving(shuffled)))) == facts(only(fold_all(arriving(session))))


@settings(max_examples=60, deadline=None)
@given(session=sessions(), data=st.data())
def test_redeliveries_change_nothing_but_the_duplicate_count_and_emit_nothing(session, data):
    order = data.draw(st.permutations(session))
    copies = data.draw(st.lists(st.integers(0, len(order) - 1), max_size=len(order)))
    with_copies = list(order)
    for index in sorted(copies, reverse=True):  # each copy arrives right after its original, with new bytes
        with_copies.insert(index + 1, {**order[index], "noticeId": "resent"})
    plain, noisy = Fold(), Fold()
    plain_events = [e for c in arriving(order) for e in plain.receive(c, now_ms=c.notifyMs or 0).derived]
    noisy_events = [e for c in arriving(with_copies) for e in noisy.receive(c, now_ms=c.notifyMs or 0).derived]
    assert [without_duplicate_count(e) for e in noisy_events] == plain_events
    assert only(noisy).model_dump(exclude={"duplicates"}) == only(plain).model_dump(exclude={"duplicates"})
    assert only(noisy).duplicates == len(copies)


@settings(max_examples=40, deadline=None)
@given(session=sessions(), data=st.data())
def test_handling_the_same_delivery_twice_changes_nothing(session, data):
    callbacks = arriving(data.draw(st.permutations(session)))
    tracked = track(callbacks[0].payload.sid)
    for callback in callbacks[: data.draw(st.integers(0, len(callbacks) - 1))]:
        handle(tracked, callback, now_ms=callback.notifyMs or 0)
    again = data.draw(st.sampled_from(callbacks))
    handle(tracked, again, now_ms=again.notifyMs or 0)
    before = snapshot(tracked)
    step = handle(tracked, again, now_ms=again.notifyMs or 0)
    assert step.duplicate
    assert step.derived == []
    assert snapshot(tracked).model_dump(exclude={"duplicates"}) == before.model_dump(exclude={"duplicates"})


@settings(max_examples=80, deadline=None)
@given(session=sessions(), data=st.data())
def test_each_uid_is_released_in_sequence_order_exactly_once(session, data):
    """Oracle: per uid, sorted by sequence. The one licensed deviation: a uid restarting at 0 whose number
    right after the failover notice arrives first opens there (its counter could be continuing), and its
    lower numbers then come late, still applied."""
    shuffled = arriving(data.draw(st.permutations(session)))
    buffer = ReorderBuffer()
    released = [item for c in shuffled for item in (buffer.offer(c, c.notifyMs or 0) or [])] + buffer.drain()
    delivered = [item for item in released if isinstance(item, Delivered)]
    identities = [(d.callback.payload.uid, d.callback.payload.sequence) for d in delivered]
    assert sorted(identities) == sorted((b["payload"]["uid"], b["payload"]["sequence"]) for b in session)
    for uid, lane in buffer.lanes.items():
        in_order = [seq for u, seq in identities if u == uid]
        late = [d.callback.payload.sequence for d in delivered if d.late and d.callback.payload.uid == uid]
        on_time = [seq for seq in in_order if seq not in late]
        assert on_time == sorted(on_time)
        if late:
            assert min(lane.starts) == 0
            assert max(late) < max(lane.starts)


@pytest.mark.parametrize("restart", [True, False], ids=["sequence_restarts", "sequence_continues"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_failovers_lose_nothing_and_wait_for_nothing(restart, data):
    shape = data.draw(shapes.filter(lambda s: not s.skip_first_sequence))
    shape = replace(shape, failovers=max(1, shape.failovers), restart_sequence_on_failover=restart)
    session = data.draw(sessions(st.just(shape)))
    fold = Fold()
    for body in session:  # in order, with the service's own clock: minutes between events
        step = fold.receive(decode_object(body), now_ms=body["notifyMs"])  # type: ignore[arg-type]
        assert not step.duplicate
        assert only(fold).buffered == 0
    state = only(fold)
    assert (state.duplicates, state.gaps, state.late_events) == (0, 0, 0)
    assert state.events_applied == len(session)
    notices = sum(body["eventType"] == 12 for body in session)
    assert notices >= 1
    assert state.failovers == notices
    assert state.uid == session[-1]["payload"]["uid"]


@settings(max_examples=60, deadline=None)
@given(session=sessions(shapes.filter(lambda s: s.minutes >= 2)), data=st.data())
def test_a_callback_arriving_after_its_hole_was_skipped_still_counts_and_never_moves_status_back(session, data):
    index = data.draw(st.integers(0, len(session) - 1))
    straggler, others = session[index], session[:index] + session[index + 1 :]
    on_time = arriving(others)
    fold = Fold()
    events = [e for c in on_time for e in fold.receive(c, now_ms=c.notifyMs or 0).derived]
    # A minute later, far past the gap timeout: the hole is given up on, then the straggler arrives.
    later = (on_time[-1].notifyMs or 0) + 60_000
    (tracked,) = fold.recordings.values()
    events += tick(tracked, now_ms=later).derived
    events += fold.receive(decode_object({**straggler, "notifyMs": later}), now_ms=later).derived  # type: ignore[arg-type]
    events += fold.finish()
    assert facts(only(fold)) == facts(only(fold_all(arriving(session))))
    uid, sequence = straggler["payload"]["uid"], straggler["payload"]["sequence"]
    behind_it = any(b["payload"]["uid"] == uid and b["payload"]["sequence"] > sequence for b in others)
    assert only(fold).late_events == int(behind_it)
    for event in events:
        if isinstance(event, StatusChanged):
            assert codes.status_rank(event.to_status) > codes.status_rank(event.from_status)


@settings(max_examples=60, deadline=None)
@given(session=sessions(), data=st.data())
def test_every_derived_event_the_fold_builds_is_valid_against_its_own_schema(session, data):
    """The core builds derived events without re-validating them (`schemas.derived.trusted`): prove it may."""
    deliveries = arriving(data.draw(st.permutations(session)))
    fold = Fold()
    events = [e for c in deliveries for e in fold.receive(c, now_ms=c.notifyMs or 0).derived] + fold.finish()
    assert events
    for event in events:
        assert DERIVED_EVENT_ADAPTER.validate_python(event.model_dump()) == event
        assert DERIVED_EVENT_ADAPTER.validate_json(event.model_dump_json()) == event
