"""Persisting a recording with its reorder buffer: a reloaded worker continues exactly where it stopped."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.fold import Fold, handle, snapshot, track
from processor.core.persist import StoredRecordingError, dump, load
from processor.core.reorder import ReorderPolicy
from schemas.compiled import decode_fast
from schemas.decode import decode_object
from tests.unit.builders import SID, T0, body, progress
from tests.unit.strategies import arriving, sessions

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


#: What the format-1 `dump` of the release before compiled callbacks stored (held callbacks dumped by their
#: pydantic models, extras included) for OLD_BODIES[:4]: a changelog written then must still load.
STORED_BEFORE_COMPILED = (
    b'{"version":1,"recording":{"sid":"sid-1","cname":"room","status":4,"first_uid":[[1700000000000,"1001"'
    b',0],"1001"],"failovers":[],"discontinuities":[["7","audio",1700000000100,1700000000900]],"discontinu'
    b'ity_ms":800,"files":{},"exit_status":null,"errors":0,"fatal_errors":0,"warnings":0,"last_error":null'
    b',"last_warning":null,"leave_code":null,"streams":{"audio":{},"video":{}},"upload_progress":null,"rec'
    b'ording_mode":null,"vod_video_id":null,"vod_triggered":false,"unknown_events":0,"first_event_ms":1700'
    b'000000000,"last_event_ms":1700000001000,"ended":false,"events_applied":2,"duplicates":0,"gaps":0,"la'
    b'te_events":0},"clock_ms":1700000004000,"last_offer_ms":1700000004000,"lanes":[{"uid":"1001","starts"'
    b':[0],"next_sequence":2,"received":[[0,1],[3,4]],"pending":[[1700000004000,{"noticeId":"n-1001-4","pr'
    b'oductId":3,"notifyMs":1700000004000,"eventType":31,"payload":{"cname":"room","uid":"1001","sid":"sid'
    b'-1","sequence":4,"sendts":1700000004000,"serviceType":0,"details":{"status":0,"fileList":[{"fileName'
    b'":"a.m3u8","trackType":"audio","uid":"7","mixedAllUser":null,"isPlayable":null,"sliceStartTime":null'
    b'}],"msgName":"uploaded"}}}],[1700000004000,{"noticeId":"n-1001-3","productId":3,"notifyMs":170000000'
    b'3000,"eventType":33,"payload":{"cname":"room","uid":"1001","sid":"sid-1","sequence":3,"sendts":17000'
    b'00003000,"serviceType":0,"details":{"progress":5000,"msgName":"uploading_progress"}}}]]}],"source_po'
    b'sition":null}'
)
OLD_BODIES = [
    body(40, 0, {"msgName": "recorder_started", "status": 0}),
    body(42, 1, {"startUtcMs": T0 + 900, "discontinueUtcMs": T0 + 100, "streamUid": "7", "trackType": "audio"}),
    body(
        31,
        4,
        {"msgName": "uploaded", "status": 0, "fileList": [{"fileName": "a.m3u8", "trackType": "audio", "uid": "7"}]},
    ),
    body(33, 3, {"msgName": "uploading_progress", "progress": 5000}),
    body(30, 2, {"msgName": "uploader_started", "status": 0}),
]


@pytest.mark.parametrize("read", [decode_object, lambda b: decode_fast(orjson.dumps(b))], ids=["contract", "compiled"])
def test_a_recording_stored_before_compiled_callbacks_loads_and_continues(read):
    never_stopped = track(SID, POLICY)
    events = [e for b in OLD_BODIES for e in handle(never_stopped, read(b), now_ms=b["notifyMs"]).derived]
    reloaded = load(STORED_BEFORE_COMPILED, POLICY)
    assert snapshot(reloaded).buffered == 2
    last = OLD_BODIES[-1]
    released = handle(reloaded, read(last), now_ms=last["notifyMs"]).derived
    # 30 derives nothing (the status is past 3 already); 31 derives files_uploaded and status_changed.
    assert [event.sequence for event in released] == [3, 4, 4]
    assert released == events[-3:]
    assert snapshot(reloaded) == snapshot(never_stopped)


def test_a_stored_recording_occupies_only_its_own_bytes():
    tracked = track(SID)
    handle(tracked, progress(0), now_ms=T0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stored = [dump(tracked) for _ in range(100)]
        per_value = (tracemalloc.get_traced_memory()[0] - before) / len(stored)
    finally:
        tracemalloc.stop()
    assert per_value < 2 * len(stored[0]) + 100  # not orjson's whole output buffer (8 KiB and more)
