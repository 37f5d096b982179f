"""The state machine of one recording: `apply` folds one released callback into its facts.

Facts that several callbacks can set (stream state, progress, last error, ...) keep the value with the
highest `OrderKey` (event time, uid, sequence) instead of the last one applied, and counters count each
discontinuity and failover once. So the outcome does not depend on how callbacks of different recorder
uids interleave, and a late callback never moves anything backwards: the status only ever rises along the
lifecycle (`codes.status_rank`) and stops at a terminal status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from processor.core import codes
from schemas.callbacks import (
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
from schemas.derived import (
    DerivedEvent,
    FailedOver,
    FilesUploaded,
    RecorderLeft,
    RecordingErrored,
    RecordingWarned,
    SessionEnded,
    SessionSummary,
    SliceDiscontinuityDetected,
    StatusChanged,
    StreamStateChanged,
    UnknownEventReceived,
    UploadedFileInfo,
    UploadProgressed,
    VodUploadStarted,
    VodUploadTriggered,
    event_id,
)
from schemas.state import ErrorRecord, FailoverRecord

#: (event time ms, uid, sequence): a total order of callbacks that does not depend on arrival.
OrderKey = tuple[int, str, int]
Media = Literal["audio", "video"]
Derived = list[DerivedEvent]
E = TypeVar("E", bound=DerivedEvent)


@dataclass(slots=True)
class Recording:
    """What is known about one recording (`sid`), built only by `apply`."""

    sid: str
    cname: str = ""
    status: int = 0
    #: uid of the earliest callback: the recorder before any failover.
    first_uid: tuple[OrderKey, str] | None = None
    #: Failovers ordered by event time; the active uid is the last one's new uid.
    failovers: list[FailoverRecord] = field(default_factory=list)
    #: (streamUid, trackType, discontinueUtcMs, startUtcMs) of every discontinuity counted.
    discontinuities: set[tuple[str, str, int, int]] = field(default_factory=set)
    discontinuity_ms: int = 0
    files: dict[str, tuple[OrderKey, UploadedFileInfo]] = field(default_factory=dict)
    exit_status: tuple[OrderKey, int] | None = None
    errors: int = 0
    fatal_errors: int = 0
    warnings: int = 0
    last_error: tuple[OrderKey, ErrorRecord] | None = None
    last_warning: tuple[OrderKey, ErrorRecord] | None = None
    leave_code: tuple[OrderKey, int] | None = None
    #: "audio" | "video" → streamUid → (key, receiving, `UtcMs`) of the latest report by event time.
    streams: dict[Media, dict[str, tuple[OrderKey, bool, int]]] = field(
        default_factory=lambda: {"audio": {}, "video": {}}
    )
    upload_progress: tuple[OrderKey, int] | None = None
    recording_mode: tuple[OrderKey, int] | None = None
    vod_video_id: tuple[OrderKey, str] | None = None
    vod_triggered: bool = False
    unknown_events: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    ended: bool = False
    events_applied: int = 0
    # Delivery statistics, kept here by the fold so that `session_ended` can report them.
    duplicates: int = 0
    gaps: int = 0
    late_events: int = 0

    @property
    def uid(self) -> str:
        """Return the active recorder uid."""
        if self.failovers:
            return self.failovers[-1].new_uid
        return self.first_uid[1] if self.first_uid else ""


def event_ms(callback: Callback) -> int:
    """Return the callback's event time: `sendts`, else the envelope's `notifyMs`."""
    payload = callback.payload
    return payload.sendts if payload.sendts is not None else (callback.notifyMs or 0)


def apply(recording: Recording, callback: Callback, *, late: bool = False) -> Derived:
    """Fold one callback, released in order (or late), into the recording; return the derived events."""
    origin = _Origin(recording, callback, late)
    _note_delivery(recording, origin)
    return HANDLERS[type(callback)](recording, callback, origin)


class _Origin:
    """One callback's identity and event time, and the fields every derived event of it shares."""

    __slots__ = ("at_ms", "base", "key")

    def __init__(self, recording: Recording, callback: Callback, late: bool) -> None:
        payload = callback.payload
        at_ms = event_ms(callback)
        self.at_ms = at_ms
        self.key: OrderKey = (at_ms, payload.uid, payload.sequence)
        self.base: dict[str, Any] = {
            "sid": recording.sid,
            "cname": recording.cname or payload.cname,
            "uid": payload.uid,
            "sequence": payload.sequence,
            "at_ms": at_ms,
            "late": late,
        }

    def event(self, cls: type[E], **fields: Any) -> E:
        """Build the derived event of class `cls` that this callback causes."""
        fields.update(self.base)
        fields["event_id"] = event_id(self.base["sid"], self.base["uid"], self.base["sequence"], cls.kind_name())
        return cls.trusted(fields)


def _newer(current: tuple[OrderKey, Any] | None, key: OrderKey) -> bool:
    return current is None or key > current[0]


def _note_delivery(recording: Recording, origin: _Origin) -> None:
    recording.events_applied += 1
    if not recording.cname:
        recording.cname = origin.base["cname"]
    key = origin.key
    if recording.first_uid is None or key < recording.first_uid[0]:
        recording.first_uid = (key, key[1])
    at_ms = key[0]
    if recording.first_event_ms is None or at_ms < recording.first_event_ms:
        recording.first_event_ms = at_ms
    if recording.last_event_ms is None or at_ms > recording.last_event_ms:
        recording.last_event_ms = at_ms


def _move_status(recording: Recording, to_status: int, callback: Callback, origin: _Origin) -> Derived:
    """Raise the status to `to_status` unless it is terminal or already as far along the lifecycle."""
    from_status = recording.status
    if from_status in codes.TERMINAL_STATUSES or codes.status_rank(to_status) <= codes.status_rank(from_status):
        return []
    recording.status = to_status
    cause = f"{callback.eventType} {codes.EVENT_NAMES.get(callback.eventType, 'unknown')}"
    name = codes.STATUS_NAMES.get(to_status, f"status_{to_status}")
    return [origin.event(StatusChanged, from_status=from_status, to_status=to_status, to_status_name=name, cause=cause)]


def _raise_status(recording: Recording, callback: Callback, origin: _Origin) -> Derived:
    floor = codes.STATUS_FLOOR_BY_EVENT_TYPE[callback.eventType]
    return _move_status(recording, floor, callback, origin)


def _on_status_update(recording: Recording, callback: CloudRecordingStatusUpdate, origin: _Origin) -> Derived:
    details = callback.payload.details
    if details.recordingMode is not None and _newer(recording.recording_mode, origin.key):
        recording.recording_mode = (origin.key, details.recordingMode)
    _add_files(recording, details.fileList, origin.key)
    return _move_status(recording, details.status, callback, origin)


def _on_error(recording: Recording, callback: CloudRecordingError, origin: _Origin) -> Derived:
    details = callback.payload.details
    fatal = details.errorLevel == codes.FATAL_ERROR_LEVEL
    recording.errors += 1
    recording.fatal_errors += fatal
    if _newer(recording.last_error, origin.key):
        error = ErrorRecord(
            module=details.module,
            code=details.errorCode,
            level=details.errorLevel,
            message=details.errorMsg,
            at_ms=origin.at_ms,
        )
        recording.last_error = (origin.key, error)
    return [
        origin.event(
            RecordingErrored,
            module=details.module,
            error_level=details.errorLevel,
            error_code=details.errorCode,
            stat=details.stat,
            message=details.errorMsg,
            fatal=fatal,
        )
    ]


def _on_warning(recording: Recording, callback: CloudRecordingWarning, origin: _Origin) -> Derived:
    details = callback.payload.details
    recording.warnings += 1
    if _newer(recording.last_warning, origin.key):
        warning = ErrorRecord(module=details.module, code=details.warnCode, level=None, message="", at_ms=origin.at_ms)
        recording.last_warning = (origin.key, warning)
    return [origin.event(RecordingWarned, module=details.module, warn_code=details.warnCode)]


def _add_files(recording: Recording, files: tuple[UploadedFile, ...], key: OrderKey) -> tuple[UploadedFileInfo, ...]:
    """Record the files a callback lists; return them as UploadedFileInfo."""
    infos = tuple(_file_info(file) for file in files)
    for info in infos:
        current = recording.files.get(info.file_name)
        # A name alone (events 3, 4) never replaces the full entry of 31/32.
        if current is None or (key > current[0] and info.track_type is not None):
            recording.files[info.file_name] = (key, info)
    return infos


def _file_info(file: UploadedFile) -> UploadedFileInfo:
    return UploadedFileInfo(
        file_name=file.fileName,
        track_type=file.trackType,
        uid=file.uid,
        mixed_all_user=file.mixedAllUser,
        is_playable=file.isPlayable,
        slice_start_time=file.sliceStartTime,
    )


def _on_files(
    recording: Recording, callback: CloudRecordingFileInfos | Uploaded | Backuped, origin: _Origin
) -> Derived:
    infos = _add_files(recording, callback.payload.details.fileList, origin.key)
    uploaded = origin.event(
        FilesUploaded,
        files=infos,
        all_uploaded=not isinstance(callback, CloudRecordingFileInfos),
        via_backup=isinstance(callback, Backuped),
    )
    return [uploaded, *_raise_status(recording, callback, origin)]


def _on_exit(recording: Recording, callback: SessionExit, origin: _Origin) -> Derived:
    exit_status = callback.payload.details.exitStatus
    if _newer(recording.exit_status, origin.key):
        recording.exit_status = (origin.key, exit_status)
    # Anything but the documented 0 (normal) is taken as abnormal.
    to_status = codes.STATUS_BY_EXIT_STATUS.get(exit_status, 20)
    derived = _move_status(recording, to_status, callback, origin)
    if recording.ended:
        return derived
    recording.ended = True
    return [*derived, origin.event(SessionEnded, summary=summary(recording, origin.at_ms))]


def summary(recording: Recording, ended_ms: int) -> SessionSummary:
    """Summarise the recording as it stands, for `session_ended` and `session_expired`."""
    return SessionSummary(
        status=recording.status,
        exit_status=recording.exit_status[1] if recording.exit_status else None,
        duration_ms=max(0, ended_ms - (recording.first_event_ms or ended_ms)),
        files=tuple(sorted(recording.files)),
        discontinuities=len(recording.discontinuities),
        discontinuity_ms=recording.discontinuity_ms,
        failovers=len(recording.failovers),
        gaps=recording.gaps,
        duplicates=recording.duplicates,
        fatal_errors=recording.fatal_errors,
    )


def _on_failover(recording: Recording, callback: SessionFailover, origin: _Origin) -> Derived:
    new_uid = str(callback.payload.details.newUid)
    # A failover notice sent twice (once per uid, spec README "Failover") is one failover.
    if any(record.new_uid == new_uid for record in recording.failovers):
        return []
    notice_uid = callback.payload.uid
    old_uid = notice_uid if notice_uid != new_uid else recording.uid
    record = FailoverRecord(old_uid=old_uid, new_uid=new_uid, at_ms=origin.at_ms)
    recording.failovers.append(record)
    recording.failovers.sort(key=lambda r: (r.at_ms, r.new_uid))
    return [origin.event(FailedOver, old_uid=old_uid, new_uid=new_uid, failovers=len(recording.failovers))]


def _on_progress(recording: Recording, callback: UploadingProgress, origin: _Origin) -> Derived:
    progress = callback.payload.details.progress
    if _newer(recording.upload_progress, origin.key):
        recording.upload_progress = (origin.key, progress)
    return [origin.event(UploadProgressed, progress=progress)]


def _on_leave(recording: Recording, callback: RecorderLeave, origin: _Origin) -> Derived:
    leave_code = callback.payload.details.leaveCode
    if _newer(recording.leave_code, origin.key):
        recording.leave_code = (origin.key, leave_code)
    left = origin.event(RecorderLeft, leave_code=leave_code, reasons=codes.leave_reasons(leave_code))
    return [left, *_raise_status(recording, callback, origin)]


def _on_slice_start(recording: Recording, callback: RecorderSliceStart, origin: _Origin) -> Derived:
    details = callback.payload.details
    gap_ms = details.startUtcMs - details.discontinueUtcMs
    identity = (details.streamUid, details.trackType, details.discontinueUtcMs, details.startUtcMs)
    # Equal times open a normal slice; the same hole reported twice (by two uids) counts once.
    if gap_ms <= 0 or identity in recording.discontinuities:
        return []
    recording.discontinuities.add(identity)
    recording.discontinuity_ms += gap_ms
    return [
        origin.event(
            SliceDiscontinuityDetected,
            stream_uid=details.streamUid,
            track_type=details.trackType,
            gap_ms=gap_ms,
            discontinue_utc_ms=details.discontinueUtcMs,
            start_utc_ms=details.startUtcMs,
        )
    ]


def _on_audio_state(recording: Recording, callback: RecorderAudioStreamStateChanged, origin: _Origin) -> Derived:
    return _on_stream_state(recording, callback, origin, "audio")


def _on_video_state(recording: Recording, callback: RecorderVideoStreamStateChanged, origin: _Origin) -> Derived:
    return _on_stream_state(recording, callback, origin, "video")


def _on_stream_state(
    recording: Recording,
    callback: RecorderAudioStreamStateChanged | RecorderVideoStreamStateChanged,
    origin: _Origin,
    media: Media,
) -> Derived:
    details = callback.payload.details
    changed_at = details.UtcMs if details.UtcMs is not None else origin.at_ms
    stream_key = (changed_at, origin.key[1], origin.key[2])
    receiving = details.state == codes.STREAM_RECEIVING
    streams = recording.streams[media]
    current = streams.get(details.streamUid)
    if current is not None and stream_key <= current[0]:
        return []  # an older report than the one kept
    streams[details.streamUid] = (stream_key, receiving, changed_at)
    if current is not None and current[1] == receiving:
        return []  # a newer report of the same state (a restarted recorder says it again): nothing changed
    return [
        origin.event(
            StreamStateChanged, stream_uid=details.streamUid, media=media, receiving=receiving, changed_at_ms=changed_at
        )
    ]


def _on_vod_triggered(recording: Recording, callback: VodTriggered, origin: _Origin) -> Derived:
    recording.vod_triggered = True
    return [origin.event(VodUploadTriggered)]


def _on_unknown(recording: Recording, callback: UnknownEvent, origin: _Origin) -> Derived:
    recording.unknown_events += 1
    details = callback.payload.details.model_dump()
    return [origin.event(UnknownEventReceived, event_type=callback.eventType, details=details)]


def _on_vod_started(recording: Recording, callback: VodStarted, origin: _Origin) -> Derived:
    video_id = callback.payload.details.aliVodInfo.videoId
    if _newer(recording.vod_video_id, origin.key):
        recording.vod_video_id = (origin.key, video_id)
    return [origin.event(VodUploadStarted, video_id=video_id)]


#: Callback class → handler: one row per documented eventType (spec "回调事件") and the pass-through.
#: A table, not a `match`: one lookup instead of up to 17 isinstance checks per callback, and a unit test
#: proves every class of `schemas.callbacks.Callback` has its row.
HANDLERS: Mapping[type[Envelope], Callable[[Recording, Any, _Origin], Derived]] = {
    CloudRecordingError: _on_error,  # 1
    CloudRecordingWarning: _on_warning,  # 2
    CloudRecordingStatusUpdate: _on_status_update,  # 3
    CloudRecordingFileInfos: _on_files,  # 4
    SessionExit: _on_exit,  # 11
    SessionFailover: _on_failover,  # 12
    UploaderStarted: _raise_status,  # 30
    Uploaded: _on_files,  # 31
    Backuped: _on_files,  # 32
    UploadingProgress: _on_progress,  # 33
    RecorderStarted: _raise_status,  # 40
    RecorderLeave: _on_leave,  # 41
    RecorderSliceStart: _on_slice_start,  # 42
    RecorderAudioStreamStateChanged: _on_audio_state,  # 43
    RecorderVideoStreamStateChanged: _on_video_state,  # 44
    VodStarted: _on_vod_started,  # 60
    VodTriggered: _on_vod_triggered,  # 61
    UnknownEvent: _on_unknown,  # 13, 45, 70–73, 80/81, 90, 100, 1001, ...
}
