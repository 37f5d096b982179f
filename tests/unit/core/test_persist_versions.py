"""Every format version a recording was ever stored in loads, upcast to the current one (`persist.UPCASTERS`).

Each golden value below is what that release's `dump` wrote for the same four deliveries (`DELIVERIES`):
callbacks 0 and 1 applied, 3 and 4 held behind the missing 2.
"""

from __future__ import annotations

import re

import orjson
import pytest

from processor.core.fold import handle, snapshot, track
from processor.core.persist import FORMAT_VERSION, UPCASTERS, StoredRecordingError, dump, load, upcast
from processor.core.reorder import ReorderPolicy
from schemas.decode import decode_object
from tests.unit.builders import SID, T0, body

POLICY = ReorderPolicy()
DELIVERIES = [
    body(40, 0, {"msgName": "recorder_started", "status": 0}),
    body(42, 1, {"startUtcMs": T0 + 900, "discontinueUtcMs": T0 + 100, "streamUid": "7", "trackType": "audio"}),
    body(
        31,
        4,
        {"msgName": "uploaded", "status": 0, "fileList": [{"fileName": "a.m3u8", "trackType": "audio", "uid": "7"}]},
    ),
    body(33, 3, {"msgName": "uploading_progress", "progress": 5000}),
]
MISSING = body(30, 2, {"msgName": "uploader_started", "status": 0})

#: Version 0, as e565ad8 stored it (labelled 1): no `last_offer_ms`, no `source_position`.
STORED_V0_FIRST = (
    b'{"version":1,"recording":{"sid":"sid-1","cname":"room","status":4,"first_uid":[[1700000000000,"1001",0],'
    b'"1001"],"failovers":[],"discontinuities":[["7","audio",1700000000100,1700000000900]],"discontinuity_ms":'
    b'800,"files":{},"exit_status":null,"errors":0,"fatal_errors":0,"warnings":0,"last_error":null,"last_warni'
    b'ng":null,"leave_code":null,"streams":{"audio":{},"video":{}},"upload_progress":null,"recording_mode":nul'
    b'l,"vod_video_id":null,"vod_triggered":false,"unknown_events":0,"first_event_ms":1700000000000,"last_even'
    b't_ms":1700000001000,"ended":false,"events_applied":2,"duplicates":0,"gaps":0,"late_events":0},"clock_ms"'
    b':1700000004000,"lanes":[{"uid":"1001","starts":[0],"next_sequence":2,"received":[[0,1],[3,4]],"pending":'
    b'[[1700000004000,{"noticeId":"n-1001-4","productId":3,"notifyMs":1700000004000,"eventType":31,"payload":{'
    b'"cname":"room","uid":"1001","sid":"sid-1","sequence":4,"sendts":1700000004000,"serviceType":0,"details":'
    b'{"status":0,"fileList":[{"fileName":"a.m3u8","trackType":"audio","uid":"7","mixedAllUser":null,"isPlayab'
    b'le":null,"sliceStartTime":null}],"msgName":"uploaded"}}}],[1700000004000,{"noticeId":"n-1001-3","product'
    b'Id":3,"notifyMs":1700000003000,"eventType":33,"payload":{"cname":"room","uid":"1001","sid":"sid-1","sequ'
    b'ence":3,"sendts":1700000003000,"serviceType":0,"details":{"progress":5000,"msgName":"uploading_progress"'
    b"}}}]]}]}"
)
#: Version 0, as 1e461f3 stored it (labelled 1): `last_offer_ms`, no `source_position` yet.
STORED_V0_LAST_OFFER = (
    b'{"version":1,"recording":{"sid":"sid-1","cname":"room","status":4,"first_uid":[[1700000000000,"1001",0],'
    b'"1001"],"failovers":[],"discontinuities":[["7","audio",1700000000100,1700000000900]],"discontinuity_ms":'
    b'800,"files":{},"exit_status":null,"errors":0,"fatal_errors":0,"warnings":0,"last_error":null,"last_warni'
    b'ng":null,"leave_code":null,"streams":{"audio":{},"video":{}},"upload_progress":null,"recording_mode":nul'
    b'l,"vod_video_id":null,"vod_triggered":false,"unknown_events":0,"first_event_ms":1700000000000,"last_even'
    b't_ms":1700000001000,"ended":false,"events_applied":2,"duplicates":0,"gaps":0,"late_events":0},"clock_ms"'
    b':1700000004000,"last_offer_ms":1700000004000,"lanes":[{"uid":"1001","starts":[0],"next_sequence":2,"rece'
    b'ived":[[0,1],[3,4]],"pending":[[1700000004000,{"noticeId":"n-1001-4","productId":3,"notifyMs":1700000004'
    b'000,"eventType":31,"payload":{"cname":"room","uid":"1001","sid":"sid-1","sequence":4,"sendts":1700000004'
    b'000,"serviceType":0,"details":{"status":0,"fileList":[{"fileName":"a.m3u8","trackType":"audio","uid":"7"'
    b',"mixedAllUser":null,"isPlayable":null,"sliceStartTime":null}],"msgName":"uploaded"}}}],[1700000004000,{'
    b'"noticeId":"n-1001-3","productId":3,"notifyMs":1700000003000,"eventType":33,"payload":{"cname":"room","u'
    b'id":"1001","sid":"sid-1","sequence":3,"sendts":1700000003000,"serviceType":0,"details":{"progress":5000,'
    b'"msgName":"uploading_progress"}}}]]}]}'
)
#: Version 1, the current format (24d55b5 on).
STORED_V1 = (
    b'{"version":1,"recording":{"sid":"sid-1","cname":"room","status":4,"first_uid":[[1700000000000,"1001",0],'
    b'"1001"],"failovers":[],"discontinuities":[["7","audio",1700000000100,1700000000900]],"discontinuity_ms":'
    b'800,"files":{},"exit_status":null,"errors":0,"fatal_errors":0,"warnings":0,"last_error":null,"last_warni'
    b'ng":null,"leave_code":null,"streams":{"audio":{},"video":{}},"upload_progress":null,"recording_mode":nul'
    b'l,"vod_video_id":null,"vod_triggered":false,"unknown_events":0,"first_event_ms":1700000000000,"last_even'
    b't_ms":1700000001000,"ended":false,"events_applied":2,"duplicates":0,"gaps":0,"late_events":0},"clock_ms"'
    b':1700000004000,"last_offer_ms":1700000004000,"lanes":[{"uid":"1001","starts":[0],"next_sequence":2,"rece'
    b'ived":[[0,1],[3,4]],"pending":[[1700000004000,{"noticeId":"n-1001-4","productId":3,"notifyMs":1700000004'
    b'000,"eventType":31,"payload":{"cname":"room","uid":"1001","sid":"sid-1","sequence":4,"sendts":1700000004'
    b'000,"serviceType":0,"details":{"status":0,"fileList":[{"fileName":"a.m3u8","trackType":"audio","uid":"7"'
    b',"mixedAllUser":null,"isPlayable":null,"sliceStartTime":null}],"msgName":"uploaded"}}}],[1700000004000,{'
    b'"noticeId":"n-1001-3","productId":3,"notifyMs":1700000003000,"eventType":33,"payload":{"cname":"room","u'
    b'id":"1001","sid":"sid-1","sequence":3,"sendts":1700000003000,"serviceType":0,"details":{"progress":5000,'
    b'"msgName":"uploading_progress"}}}]]}],"source_position":null}'
)


def never_stopped():
    tracked = track(SID, POLICY)
    for delivery in DELIVERIES:
        handle(tracked, decode_object(delivery), now_ms=delivery["notifyMs"])
    return tracked


def test_the_current_format_is_what_dump_writes():
    assert dump(never_stopped()) == STORED_V1


@pytest.mark.parametrize(
    "stored", [STORED_V0_FIRST, STORED_V0_LAST_OFFER, STORED_V1], ids=["v0-e565ad8", "v0-1e461f3", "v1"]
)
def test_every_stored_version_loads_and_dumps_in_the_current_format(stored):
    reloaded = load(stored, POLICY)
    assert dump(reloaded) == STORED_V1
    assert snapshot(reloaded) == snapshot(never_stopped())


@pytest.mark.parametrize(
    "stored", [STORED_V0_FIRST, STORED_V0_LAST_OFFER, STORED_V1], ids=["v0-e565ad8", "v0-1e461f3", "v1"]
)
def test_a_recording_stored_in_any_version_continues_like_one_never_stopped(stored):
    straight, reloaded = never_stopped(), load(stored, POLICY)
    missing = decode_object(MISSING)
    expected = handle(straight, missing, now_ms=MISSING["notifyMs"]).derived
    assert handle(reloaded, missing, now_ms=MISSING["notifyMs"]).derived == expected
    assert [event.sequence for event in expected] == [3, 4, 4]
    assert dump(reloaded) == dump(straight)


def test_version_0_takes_the_buffers_clock_as_its_last_offer():
    """Nothing was offered after the buffer's clock: retention counts from there, never from earlier."""
    stored = orjson.loads(STORED_V0_FIRST)
    stored["clock_ms"] = T0 + 9_000  # a tick moved the clock after the last delivery
    upcast_value = upcast(stored)
    assert (upcast_value["version"], upcast_value["last_offer_ms"], upcast_value["source_position"]) == (
        1,
        T0 + 9_000,
        None,
    )


def test_every_version_below_the_current_one_has_an_upcaster():
    assert sorted(UPCASTERS) == list(range(FORMAT_VERSION))


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (b"[]", "not a JSON object"),
        (b'{"recording": {}}', "no format version"),
        (b'{"version": "1"}', "no format version"),
        (b'{"version": 2, "recording": {}}', "newer than this worker reads (1): roll forward"),
        (b'{"version": -1}', "no upcaster from format version -1"),
    ],
)
def test_a_value_no_upcaster_reaches_is_refused_saying_why(stored, message):
    with pytest.raises(StoredRecordingError, match=re.escape(message)):
        load(stored, POLICY)
