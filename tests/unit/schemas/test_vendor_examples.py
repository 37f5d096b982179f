"""The vendor documents' example bodies and the spec README's real-sender quirks (tests/corpus/), decoded and folded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.core.fold import Fold, delivery_clock_ms, fold_all
from schemas.callbacks import (
    EVENT_TYPES,
    Backuped,
    Callback,
    CloudRecordingError,
    CloudRecordingFileInfos,
    CloudRecordingStatusUpdate,
    CloudRecordingWarning,
    Envelope,
    RecorderAudioStreamStateChanged,
    RecorderLeave,
    RecorderSliceStart,
    RecorderStarted,
    RecorderVideoStreamStateChanged,
    SessionExit,
    SessionFailover,
    UnknownEvent,
    Uploaded,
    UploadedFile,
    UploaderStarted,
    UploadingProgress,
    VodStarted,
    VodTriggered,
)
from schemas.decode import decode
from schemas.derived import FilesUploaded, SessionEnded
from schemas.state import DELIVERY_FIELDS

CORPUS = Path(__file__).parents[2] / "corpus"
DOCUMENTED_SID = "38f8e3cfdc474cd56fc1ceba380d7e1a"
M3U8 = f"{DOCUMENTED_SID}_class_0423.m3u8"
T = 1619172868000


def read_body(relative: str) -> bytes:
    return (CORPUS / relative).read_bytes()


def decoded(relative: str) -> Any:
    result = decode(read_body(relative))
    assert isinstance(result, Envelope), result
    return result


def real_order_session() -> list[Callback]:
    lines = (CORPUS / "real_order_session.jsonl").read_bytes().splitlines()
    callbacks = [decode(line) for line in lines]
    assert all(isinstance(callback, Envelope) for callback in callbacks)
    return callbacks  # type: ignore[return-value]


DOCUMENTED = [
    (
        "01_cloud_recording_error.json",
        CloudRecordingError,
        {"module": 1, "errorLevel": 5, "errorCode": 47, "stat": 1, "errorMsg": "upload failed"},
    ),
    ("02_cloud_recording_warning.json", CloudRecordingWarning, {"module": 1, "warnCode": 31}),
    ("03_cloud_recording_status_update.json", CloudRecordingStatusUpdate, {"status": 5, "recordingMode": 0}),
    ("04_cloud_recording_file_infos.json", CloudRecordingFileInfos, {}),
    ("11_session_exit.json", SessionExit, {"exitStatus": 0}),
    ("12_session_failover.json", SessionFailover, {"newUid": 2089612121}),
    ("30_uploader_started.json", UploaderStarted, {"status": 0}),
    ("31_uploaded.json", Uploaded, {"status": 0}),
    ("32_backuped.json", Backuped, {"status": 0}),
    ("33_uploading_progress.json", UploadingProgress, {"progress": 9876}),
    ("40_recorder_started.json", RecorderStarted, {"status": 0}),
    ("41_recorder_leave.json", RecorderLeave, {"leaveCode": 6}),
    (
        "42_recorder_slice_start.json",
        RecorderSliceStart,
        {
            "startUtcMs": T + 63089,
            "discontinueUtcMs": T + 51089,
            "mixedAllUser": True,
            "streamUid": "0",
            "trackType": "audio_and_video",
        },
    ),
    (
        "43_recorder_audio_stream_state_changed.json",
        RecorderAudioStreamStateChanged,
        {"streamUid": "57297", "state": 1, "UtcMs": T + 70012},
    ),
    (
        "44_recorder_video_stream_state_changed.json",
        RecorderVideoStreamStateChanged,
        {"streamUid": "57297", "state": 0, "UtcMs": T + 70034},
    ),
    ("60_vod_started.json", VodStarted, {}),
    ("61_vod_triggered.json", VodTriggered, {}),
]


def test_the_corpus_has_one_documented_body_per_documented_event_type() -> None:
    event_types = sorted(orjson.loads(read_body(f"documented/{name}"))["eventType"] for name, _, _ in DOCUMENTED)
    assert event_types == sorted(EVENT_TYPES)
    assert sorted(path.name for path in (CORPUS / "documented").glob("*.json")) == sorted(n for n, _, _ in DOCUMENTED)


@pytest.mark.parametrize(("name", "cls", "fields"), DOCUMENTED, ids=[name[:-5] for name, _, _ in DOCUMENTED])
def test_every_documented_event_type_decodes_to_its_class_with_the_documented_fields(
    name: str, cls: type[Envelope], fields: dict[str, Any]
) -> None:
    body = orjson.loads(read_body(f"documented/{name}"))
    callback = decoded(f"documented/{name}")
    assert type(callback) is cls
    assert EVENT_TYPES[callback.eventType] is cls
    payload = callback.payload
    assert (payload.sid, payload.cname, payload.uid) == (DOCUMENTED_SID, "class_0423", "527841")
    assert (payload.sequence, payload.sendts, payload.serviceType) == (
        body["payload"]["sequence"],
        body["payload"]["sendts"],
        body["payload"]["serviceType"],
    )
    details = payload.details
    assert {field: getattr(details, field) for field in fields} == fields
    # msgName is not a model field: it is kept as an extra, never read for dispatch.
    assert details.model_extra == {"msgName": body["payload"]["details"]["msgName"]}


@pytest.mark.parametrize(
    ("name", "file_names"),
    [
        ("03_cloud_recording_status_update.json", (M3U8,)),
        ("04_cloud_recording_file_infos.json", (M3U8,)),
        ("31_uploaded.json", (M3U8,)),
        ("32_backuped.json", (M3U8, f"{DOCUMENTED_SID}_class_0423.mp4")),
    ],
)
def test_file_list_as_a_string_or_an_array_becomes_a_tuple_of_uploaded_files(
    name: str, file_names: tuple[str, ...]
) -> None:
    file_list = decoded(f"documented/{name}").payload.details.fileList
    assert isinstance(file_list, tuple)
    assert all(isinstance(file, UploadedFile) for file in file_list)
    assert tuple(file.fileName for file in file_list) == file_names


def test_a_file_list_string_carries_only_the_file_name() -> None:
    (file,) = decoded("documented/04_cloud_recording_file_infos.json").payload.details.fileList
    assert file == UploadedFile(fileName=M3U8)


def test_vod_started_keeps_the_ali_vod_video_id() -> None:
    callback = decoded("documented/60_vod_started.json")
    assert callback.payload.details.aliVodInfo.videoId == "4a8b9c0d1e2f4a5b8c7d6e5f4a3b2c1d"


ANYRTC = [
    ("31_single_stream.json", Uploaded, "backuped"),
    ("31_mixed_without_mp4.json", Uploaded, "backuped"),
    ("31_mixed_with_mp4.json", Uploaded, "backuped"),
    ("32_single_stream.json", Backuped, "uploaded"),
    ("32_mixed_without_mp4.json", Backuped, "uploaded"),
    ("32_mixed_with_mp4.json", Backuped, "uploaded"),
]


@pytest.mark.parametrize(("name", "cls", "msg_name"), ANYRTC)
def test_dispatches_on_event_type_not_msg_name(name: str, cls: type[Envelope], msg_name: str) -> None:
    callback = decoded(f"anyrtc/{name}")
    assert type(callback) is cls
    # The vendor's swapped label is kept as it came, and ignored.
    assert callback.payload.details.model_extra == {"msgName": msg_name}


ANYRTC_FILES = {
    "single_stream": [
        UploadedFile(
            fileName="xxx.m3u8",
            trackType="audio",
            uid="57297",
            mixedAllUser=False,
            isPlayable=True,
            sliceStartTime=1619172871089,
        ),
        UploadedFile(
            fileName="xxx.m3u8",
            trackType="audio",
            uid="10230",
            mixedAllUser=False,
            isPlayable=True,
            sliceStartTime=1619172871099,
        ),
    ],
    "mixed_without_mp4": [
        UploadedFile(
            fileName="xxx.m3u8",
            trackType="audio_and_video",
            uid="0",
            mixedAllUser=True,
            isPlayable=True,
            sliceStartTime=1619170461821,
        )
    ],
    "mixed_with_mp4": [
        UploadedFile(
            fileName="xxx.mp4",
            trackType="audio_and_video",
            uid="0",
            mixedAllUser=True,
            isPlayable=True,
            sliceStartTime=1619172632080,
        ),
        UploadedFile(
            fileName="xxx.m3u8",
            trackType="audio_and_video",
            uid="0",
            mixedAllUser=True,
            isPlayable=True,
            sliceStartTime=1619172632080,
        ),
    ],
}


@pytest.mark.parametrize("event_type", [31, 32])
@pytest.mark.parametrize("example", list(ANYRTC_FILES))
def test_anyrtc_file_list_entries_keep_every_documented_field(event_type: int, example: str) -> None:
    details = decoded(f"anyrtc/{event_type}_{example}.json").payload.details
    assert details.status == 0
    assert list(details.fileList) == ANYRTC_FILES[example]


@pytest.mark.parametrize(
    ("example", "files"),
    [
        # The vendor's placeholder names collide: one file name, however many entries.
        ("single_stream", ("xxx.m3u8",)),
        ("mixed_without_mp4", ("xxx.m3u8",)),
        ("mixed_with_mp4", ("xxx.m3u8", "xxx.mp4")),
    ],
)
@pytest.mark.parametrize(("event_type", "via_backup"), [(31, False), (32, True)])
def test_folding_an_anyrtc_upload_example_records_its_files_and_stops_the_service(
    example: str, files: tuple[str, ...], event_type: int, via_backup: bool
) -> None:
    callback = decoded(f"anyrtc/{event_type}_{example}.json")
    fold = fold_all([callback])
    (state,) = fold.snapshots()
    assert (state.files, state.status, state.exit_status, state.duplicates) == (files, 7, None, 0)
    (uploaded,) = [event for event in _derived([callback]) if isinstance(event, FilesUploaded)]
    assert (uploaded.all_uploaded, uploaded.via_backup) == (True, via_backup)
    assert len(uploaded.files) == len(ANYRTC_FILES[example])


def _derived(callbacks: list[Callback]) -> list[Any]:
    fold = Fold()
    events = [event for c in callbacks for event in fold.receive(c, now_ms=delivery_clock_ms(c)).derived]
    return events + fold.finish()


WILD = [
    ("top_level_sid_and_service_scene.json", RecorderStarted, "model_extra", {
        "sid": "d4f6b8c0325e7a9b1d3f5b7c9e1f3c45",
        "serviceScene": "mix_record",
    }),
    ("utc_ms_lower_case.json", RecorderAudioStreamStateChanged, "payload.details.UtcMs", T + 5012),
    ("mixed_all_user_string.json", RecorderSliceStart, "payload.details.mixedAllUser", True),
    ("new_uid_string.json", SessionFailover, "payload.details.newUid", 2089612121),
    ("uid_number.json", RecorderStarted, "payload.uid", "527841"),
    ("stream_uid_number.json", RecorderVideoStreamStateChanged, "payload.details.streamUid", "57297"),
    ("legacy_format.json", RecorderStarted, "payload.sequence", 7),
    ("console_check.json", RecorderStarted, "payload.cname", "test_webhook"),
]  # fmt: skip


def _path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("name", "cls", "path", "value"), WILD, ids=[name[:-5] for name, *_ in WILD])
def test_real_sender_quirks_decode_to_the_documented_meaning(
    name: str, cls: type[Envelope], path: str, value: Any
) -> None:
    callback = decoded(f"wild/{name}")
    assert type(callback) is cls
    assert _path(callback, path) == value


def test_the_legacy_format_decodes_with_its_old_field_names() -> None:
    callback = decoded("wild/legacy_format.json")
    assert callback.noticeId == "8b6e0f2a4c1d4e3f9a7b5c3d1e0f2a4b"
    assert (callback.productId, callback.notifyMs, callback.payload.sendts) == (3, T + 1_000, None)
    assert callback.payload.model_extra == {"noticeLevel": "info"}
    # Without sendts, eventMs stands in for the event time.
    (state,) = fold_all([callback]).snapshots()
    assert (state.status, state.first_event_ms, state.last_sequence) == (4, T + 1_000, 7)


UNKNOWN = [
    ("unknown_13_high_availability_registered.json", 13),
    ("unknown_45_recorder_snapshot_file.json", 45),
    ("unknown_90_download_failed.json", 90),
    ("unknown_1001_postpone_transcode_result.json", 1001),
]


@pytest.mark.parametrize(("name", "event_type"), UNKNOWN)
def test_undocumented_event_types_decode_to_unknown_event_keeping_all_details(name: str, event_type: int) -> None:
    body = orjson.loads(read_body(f"wild/{name}"))
    callback = decoded(f"wild/{name}")
    assert isinstance(callback, UnknownEvent)
    assert callback.eventType == event_type
    assert callback.payload.details.model_dump() == body["payload"]["details"]
    (state,) = fold_all([callback]).snapshots()
    assert state.unknown_events == 1


def test_the_console_address_check_creates_no_recording() -> None:
    fold = fold_all([decoded("wild/console_check.json")])
    assert fold.recordings == {}
    assert fold.skipped == {"console_check": 1}


def test_the_real_order_session_arrives_in_the_order_the_spec_quotes() -> None:
    event_types = [callback.eventType for callback in real_order_session()]
    assert event_types == [40, 44, 43, 43, 44, 4, 4, 44, 43, 42, 44, 43, 41, 43, 44, 44, 11, 43, 31]
    notify = [callback.notifyMs or 0 for callback in real_order_session()]
    assert all(notify)
    assert notify == sorted(notify)


def test_the_real_order_session_folds_to_an_exited_recording_with_both_files() -> None:
    sid = "f6b8d0e2547a9c1d3f5b7d9e1a3c5e67"
    (state,) = fold_all(real_order_session()).snapshots()
    assert (state.sid, state.status, state.status_name, state.exit_status) == (sid, 8, "about_to_exit", 0)
    assert state.files == (
        f"{sid}_class_0423__uid_s_10230__uid_e_av.m3u8",
        f"{sid}_class_0423__uid_s_57297__uid_e_av.m3u8",
    )
    # The two 4s are two events (sequences 7 and 8, one M3U8 per user), not a resend: nothing is a duplicate.
    assert (state.duplicates, state.late_events, state.buffered) == (0, 0, 0)
    # Sequence 0 never came (the 40 carries 1): one hole, given up on after the gap timeout.
    assert (state.missing_sequences, state.last_sequence, state.gaps) == ((0,), 19, 1)
    assert (state.events_applied, state.leave_code, state.leave_reasons) == (19, 2, ("sigint",))
    assert (state.fatal_errors, state.failovers, state.discontinuities) == (0, 0, 0)


def test_stream_events_after_the_recorder_left_are_applied() -> None:
    (state,) = fold_all(real_order_session()).snapshots()
    streams = {(s.stream_uid, s.media): (s.receiving, s.changed_at_ms) for s in state.streams}
    # Sequences 14–17 come after 41 (13): both users' streams end up not receiving, at their own times.
    assert streams == {
        ("10230", "audio"): (False, T + 180200),
        ("10230", "video"): (False, T + 180210),
        ("57297", "audio"): (False, T + 180250),
        ("57297", "video"): (False, T + 180230),
    }


def test_the_session_ends_only_after_the_upload_that_arrived_after_it() -> None:
    kinds = [(event.sequence, event.kind) for event in _derived(real_order_session())]
    # 11 (sequence 19) arrived before 31 (18): the reorder buffer applies the upload first.
    assert kinds[-4:] == [(18, "files_uploaded"), (18, "status_changed"), (19, "status_changed"), (19, "session_ended")]
    ended = _derived(real_order_session())[-1]
    assert isinstance(ended, SessionEnded)
    assert (ended.summary.status, ended.summary.exit_status, len(ended.summary.files)) == (8, 0, 2)


def test_the_real_arrival_order_and_the_service_order_fold_to_the_same_recording() -> None:
    arrived = real_order_session()
    in_order = sorted(arrived, key=lambda callback: callback.payload.sequence)
    (real,) = fold_all(arrived).snapshots()
    (ideal,) = fold_all(in_order).snapshots()
    assert real.model_dump(exclude=set(DELIVERY_FIELDS)) == ideal.model_dump(exclude=set(DELIVERY_FIELDS))
