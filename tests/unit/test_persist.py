"""Persisting a recording with its reorder buffer: a reloaded worker continues exactly where it stopped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.fold import Fold, handle, snapshot, track
from processor.core.persist import StoredRecordingError, dump, load
from processor.core.reorder import ReorderPolicy
from tests.unit.builders import SID, T0, progress
from tests.unit.test_properties import arriving, sessions

POLICY = ReorderPolicy()


@settings(max_examples=60, deadline=None)
@given(session=sessions(), data=st.data())
def test_a_reloaded_recording_continues_exactly_like_one_never_stopped(session, data):
    deliveries = arriving(data.draw(st.permutations(session)))
    stop = data.draw(st.integers(0, len(deliveries)))
    straight, restarted = track(deliveries[0].payload.sid, POLICY), track(deliveries[0].payload.sid, POLICY)
    straight_events, restarted_events = [], []
    for index, delivery in enumerate(deliveries):
        if index == stop:  # the worker dies here; its successor loads what the changelog holds
            restarted = load(dump(restarted), POLICY)
        straight_events += handle(straight, delivery, now_ms=delivery.notifyMs or 0).derived
        restarted_events += handle(restarted, delivery, now_ms=delivery.notifyMs or 0).derived
    assert restarted_events == straight_events
    assert snapshot(restarted) == snapshot(straight)
    assert dump(restarted) == dump(straight)


def test_callbacks_held_behind_a_hole_survive_the_reload():
    tracked = track(SID)
    handle(tracked, progress(0), now_ms=T0)
    handle(tracked, progress(2), now_ms=T0)
    reloaded = load(dump(tracked), POLICY)
    assert snapshot(reloaded).buffered == 1
    released = handle(reloaded, progress(1), now_ms=T0).derived
    assert [event.sequence for event in released] == [1, 2]


@settings(max_examples=20, deadline=None)
@given(first=sessions(), second=sessions())
def test_a_reloaded_fold_has_the_same_snapshot_for_every_recording(first, second):
    fold = Fold()
    for delivery in arriving(sorted(first + second, key=lambda body: body["notifyMs"])):
        fold.receive(delivery, now_ms=delivery.notifyMs or 0)
    for tracked in fold.recordings.values():
        assert snapshot(load(dump(tracked), POLICY)) == snapshot(tracked)


@pytest.mark.parametrize("stored", [b"[]", b'{"version": 99}', b'{"recording": {}}'])
def test_refuses_bytes_of_another_format_version(stored):
    with pytest.raises(StoredRecordingError):
        load(stored, POLICY)
