"""The state machine: one rule of the spec per test, table-driven where the spec is a table."""

from __future__ import annotations

import pytest

from processor.core.fold import snapshot, track
from processor.core.machine import Recording, apply
from schemas.derived import (
    FailedOver,
    FilesUploaded,
    RecorderLeft,
    RecordingErrored,
    SessionEnded,
    SliceDiscontinuityDetected,
    StatusChanged,
    StreamStateChanged,
    UnknownEventReceived,
    UploadProgressed,
    VodUploadStarted,
    VodUploadTriggered,
)
from tests.unit.builders import SID, T0, UID, callback

FILE = {"fileName": "a.m3u8", "trackType": "audio", "uid": "7", "mixedAllUser": False, "isPlayable": True}


def fresh() -> Recording:
    return Recording(SID)


@pytest.mark.parametrize(
    ("event_type", "details", "status"),
    [
        (30, {"status": 0}, 3),
        (40, {"status": 0}, 4),
        (4, {"fileList": "a.m3u8"}, 5),
        (41, {"leaveCode": 2}, 6),
        (31, {"status": 0, "fileList": [FILE]}, 7),
        (32, {"status": 0, "fileList": [FILE]}, 7),
    ],
)
def test_lifecycle_events_raise_the_status_to_their_floor(event_type, details, status):
    recording = fresh()
    derived = apply(recording, callback(event_type, 0, details))
    assert recording.status == status
    changed = [event for event in derived if isinstance(event, StatusChanged)]
    assert [(e.from_status, e.to_status) for e in changed] == [(0, status)]
    assert changed[0].cause.startswith(f"{event_type} ")


def test_a_lifecycle_event_never_lowers_a_status_further_along():
    recording = fresh()
    apply(recording, callback(41, 0, {"leaveCode": 2}))
    assert apply(recording, callback(40, 1)) == []
    assert recording.status == 6


def test_status_update_sets_the_status_the_service_reports():
    recording = fresh()
    derived = apply(recording, callback(3, 0, {"status": 5, "recordingMode": 1, "fileList": "x.m3u8"}))
    assert recording.status == 5
    assert isinstance(derived[0], StatusChanged)
    state = snapshot_of(recording)
    assert state.recording_mode == 1
    assert state.files == ("x.m3u8",)


@pytest.mark.parametrize(("exit_status", "status"), [(0, 8), (1, 20), (7, 20)])
def test_session_exit_ends_in_8_or_20(exit_status, status):
    recording = fresh()
    apply(recording, callback(40, 0))
    apply(recording, callback(11, 1, {"exitStatus": exit_status}))
    assert recording.status == status
    assert snapshot_of(recording).exit_status == exit_status


@pytest.mark.parametrize("terminal", [8, 20])
def test_no_event_changes_a_terminal_status(terminal):
    recording = fresh()
    apply(recording, callback(3, 0, {"status": terminal}))
    for event_type, details in ((40, {}), (31, {"fileList": [FILE]}), (3, {"status": 20 if terminal == 8 else 8})):
        apply(recording, callback(event_type, 1, details))
    apply(recording, callback(11, 2, {"exitStatus": 1 if terminal == 8 else 0}))
    assert recording.status == terminal


def test_session_exit_emits_session_ended_once_with_a_summary():
    recording = fresh()
    apply(recording, callback(40, 0, sendts=T0))
    apply(recording, callback(31, 1, {"fileList": [FILE]}, sendts=T0 + 5_000))
    first = apply(recording, callback(11, 2, {"exitStatus": 0}, sendts=T0 + 9_000))
    ended = [event for event in first if isinstance(event, SessionEnded)]
    assert len(ended) == 1
    assert ended[0].event_id == f"{SID}:{UID}:2:session_ended"
    assert ended[0].summary.duration_ms == 9_000
    assert ended[0].summary.files == ("a.m3u8",)
    assert ended[0].summary.exit_status == 0
    again = apply(recording, callback(11, 3, {"exitStatus": 0}, uid="2002"))
    assert not any(isinstance(event, SessionEnded) for event in again)


def test_failover_swaps_the_active_uid_and_keeps_the_history():
    recording = fresh()
    apply(recording, callback(40, 0))
    derived = apply(recording, callback(12, 1, {"newUid": 2002}))
    assert derived == [
        FailedOver(
            event_id=f"{SID}:{UID}:1:failover",
            sid=SID,
            cname="room",
            uid=UID,
            sequence=1,
            at_ms=T0 + 1_000,
            old_uid=UID,
            new_uid="2002",
            failovers=1,
        )
    ]
    apply(recording, callback(12, 0, {"newUid": 3003}, uid="2002", sendts=T0 + 90_000))
    state = snapshot_of(recording)
    assert (state.uid, state.failovers, state.uids) == ("3003", 2, (UID, "2002", "3003"))


def test_the_same_failover_notified_by_both_uids_counts_once():
    recording = fresh()
    apply(recording, callback(12, 1, {"newUid": 2002}))
    assert apply(recording, callback(12, 0, {"newUid": "2002"}, uid="2002")) == []
    assert len(recording.failovers) == 1


def slice_start(sequence: int, start: int, discontinue: int, stream: str = "7", track: str = "audio") -> object:
    details = {"startUtcMs": start, "discontinueUtcMs": discontinue, "streamUid": stream, "trackType": track}
    return callback(42, sequence, details)


def test_a_slice_start_with_equal_times_is_no_discontinuity():
    recording = fresh()
    assert apply(recording, slice_start(0, T0, T0)) == []
    assert snapshot_of(recording).discontinuities == 0


def test_a_slice_start_after_an_interruption_measures_the_hole_per_stream_and_track():
    recording = fresh()
    (event,) = apply(recording, slice_start(0, T0 + 7_500, T0))
    assert isinstance(event, SliceDiscontinuityDetected)
    assert (event.gap_ms, event.stream_uid, event.track_type) == (7_500, "7", "audio")
    apply(recording, slice_start(1, T0 + 20_000, T0 + 19_000, track="video"))
    state = snapshot_of(recording)
    assert (state.discontinuities, state.discontinuity_ms) == (2, 8_500)
    assert state.discontinuities_by_track == {"7/audio": 1, "7/video": 1}


def test_the_same_hole_reported_twice_counts_once():
    recording = fresh()
    apply(recording, slice_start(0, T0 + 7_500, T0))
    assert apply(recording, slice_start(1, T0 + 7_500, T0)) == []
    assert snapshot_of(recording).discontinuity_ms == 7_500


@pytest.mark.parametrize(("event_type", "media"), [(43, "audio"), (44, "video")])
def test_stream_state_changes_are_tracked_per_stream_and_media(event_type, media):
    recording = fresh()
    (event,) = apply(recording, callback(event_type, 0, {"streamUid": "7", "state": 1, "UtcMs": T0 + 5}))
    assert isinstance(event, StreamStateChanged)
    assert (event.media, event.receiving, event.changed_at_ms) == (media, False, T0 + 5)
    # The same state reported again (a restarted recorder does): no change event, the latest report kept.
    assert apply(recording, callback(event_type, 1, {"streamUid": "7", "state": 1, "UtcMs": T0 + 9})) == []
    (stream,) = snapshot_of(recording).streams
    assert (stream.stream_uid, stream.media, stream.receiving, stream.changed_at_ms) == ("7", media, False, T0 + 9)


def test_an_older_stream_state_never_overwrites_a_newer_one():
    recording = fresh()
    apply(recording, callback(43, 1, {"streamUid": "7", "state": 0, "UtcMs": T0 + 9}))
    older = callback(43, 0, {"streamUid": "7", "state": 1, "UtcMs": T0 + 5})
    assert apply(recording, older, late=True) == []
    assert snapshot_of(recording).streams[0].receiving is True


def test_upload_progress_is_reported_and_the_latest_kept():
    recording = fresh()
    (event,) = apply(recording, callback(33, 1, {"progress": 9_000}))
    assert isinstance(event, UploadProgressed)
    assert event.progress == 9_000
    apply(recording, callback(33, 0, {"progress": 4_000}))  # older by event time
    assert snapshot_of(recording).upload_progress == 9_000


def test_files_from_3_4_31_and_32_are_collected_as_sorted_distinct_names():
    recording = fresh()
    apply(recording, callback(4, 0, {"fileList": "z.m3u8"}))
    (uploaded, _) = apply(recording, callback(31, 1, {"fileList": [FILE, {**FILE, "fileName": "b.mp4"}]}))
    assert isinstance(uploaded, FilesUploaded)
    assert uploaded.all_uploaded
    assert not uploaded.via_backup
    (backuped,) = apply(recording, callback(32, 2, {"fileList": [FILE]}))
    assert isinstance(backuped, FilesUploaded)
    assert backuped.via_backup
    state = snapshot_of(recording)
    assert state.files == ("a.m3u8", "b.mp4", "z.m3u8")
    assert state.file_details[0].track_type == "audio"


@pytest.mark.parametrize(("level", "fatal"), [(1, False), (4, False), (5, True)])
def test_errors_are_counted_and_level_5_is_fatal(level, fatal):
    recording = fresh()
    details = {"module": 1, "errorLevel": level, "errorCode": 47, "stat": 1, "errorMsg": "upload failed"}
    (event,) = apply(recording, callback(1, 0, details))
    assert isinstance(event, RecordingErrored)
    assert event.fatal is fatal
    state = snapshot_of(recording)
    assert (state.errors, state.fatal_errors) == (1, int(fatal))
    assert state.last_error is not None
    assert (state.last_error.code, state.last_error.message) == (47, "upload failed")


def test_warnings_are_counted():
    recording = fresh()
    apply(recording, callback(2, 0, {"module": 1, "warnCode": 31}))
    state = snapshot_of(recording)
    assert state.warnings == 1
    assert state.last_warning is not None
    assert state.last_warning.code == 31


@pytest.mark.parametrize(
    ("leave_code", "reasons"),
    [
        (0, ("init_failed",)),
        (2, ("sigint",)),
        (6, ("sigint", "no_users")),
        (24, ("timer_catch", "client_leave")),
        (16 | 32, ("client_leave", "unknown_bits_32")),
    ],
)
def test_leave_reasons_are_decoded_from_the_leave_code_bits(leave_code, reasons):
    recording = fresh()
    (left, _) = apply(recording, callback(41, 0, {"leaveCode": leave_code}))
    assert isinstance(left, RecorderLeft)
    assert left.reasons == reasons
    assert snapshot_of(recording).leave_reasons == reasons


def test_vod_info_is_kept():
    recording = fresh()
    (started,) = apply(recording, callback(60, 0, {"aliVodInfo": {"videoId": "v1"}}))
    (triggered,) = apply(recording, callback(61, 1))
    assert isinstance(started, VodUploadStarted)
    assert started.video_id == "v1"
    assert isinstance(triggered, VodUploadTriggered)
    state = snapshot_of(recording)
    assert (state.vod_video_id, state.vod_triggered) == ("v1", True)


def test_unknown_event_types_pass_through_as_unknown_events():
    recording = fresh()
    (event,) = apply(recording, callback(45, 0, {"fileName": "snap.jpg"}))
    assert isinstance(event, UnknownEventReceived)
    assert (event.event_type, event.details) == (45, {"fileName": "snap.jpg"})
    assert recording.status == 0
    assert recording.unknown_events == 1


def test_first_and_last_event_times_follow_event_time_not_application_order():
    recording = fresh()
    apply(recording, callback(33, 5, {"progress": 1}, sendts=T0 + 50))
    apply(recording, callback(33, 1, {"progress": 1}, sendts=T0 + 10))
    apply(recording, callback(33, 9, {"progress": 1}, sendts=T0 + 90))
    assert (recording.first_event_ms, recording.last_event_ms) == (T0 + 10, T0 + 90)


def test_derived_event_ids_are_built_from_sid_uid_sequence_and_kind():
    recording = fresh()
    (event,) = apply(recording, callback(33, 4, {"progress": 1}))
    assert event.event_id == f"{SID}:{UID}:4:upload_progress"


def snapshot_of(recording: Recording):
    tracked = track(recording.sid)
    tracked.recording = recording
    return snapshot(tracked)


def test_every_callback_class_and_its_compiled_twin_have_exactly_one_handler_row_the_same():
    from typing import get_args

    from processor.core.machine import HANDLERS
    from schemas import compiled
    from schemas.callbacks import EVENT_TYPES, Callback, UnknownEvent

    assert set(HANDLERS) == set(get_args(Callback)) | set(get_args(compiled.CompiledCallback))
    assert set(HANDLERS) == {*EVENT_TYPES.values(), UnknownEvent, *compiled.EVENT_TYPES.values()}
    assert compiled.EVENT_TYPES.keys() == EVENT_TYPES.keys()
    for number, twin in compiled.EVENT_TYPES.items():
        assert twin.__name__ == EVENT_TYPES[number].__name__
        assert HANDLERS[twin] is HANDLERS[EVENT_TYPES[number]]
