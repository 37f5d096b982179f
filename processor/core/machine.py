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
from typing import Any, Literal

from processor.core import codes
from processor.core.codes import STREAM_RECEIVING
from schemas import compiled
from schemas.callbacks import (
    EVENT_TYPES,
    Backuped,
    CloudRecordingError,
    CloudRecordingFileInfos,
    CloudRecordingStatusUpdate,
    CloudRecordingWarning,
    Envelope,
    RecorderAudioStreamStateChanged,
    RecorderLeave,
    RecorderSliceStart,
    RecorderVideoStreamStateChanged,
    SessionExit,
    SessionFailover,
    UnknownEvent,
    Uploaded,
    UploadedFile,
    UploadingProgress,
    VodStarted,
    VodTriggered,
)
from schemas.compiled import AnyCallback
from schemas.derived import (
    DerivedEvent,
    FailedOver,
    FilesUploaded,
    Origin,
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
)
from schemas.derived import trusted as trusted  # re-exported: the one place that skips validation, by its old name
from schemas.state import ErrorRecord, FailoverRecord

#: (event time ms, uid, sequence): a total order of callbacks that does not depend on arrival.
OrderKey = tuple[int, str, int]
Media = Literal["audio", "video"]
Derived = list[DerivedEvent]
#: A derived event not built yet: a closure calling its typed constructor (`of`, so mypy checks every argument)
#: over values taken when its callback was applied (locals bound once, and the callback, never the recording,
#: which moves on). Built only when someone reads it (`build`): `replay --summary` and a state rebuild never do.
#: A closure rather than a `functools.partial`: half the instructions to make, and mypy lets a partial miss arguments.
Recipe = Callable[[], DerivedEvent]
Recipes = list[Recipe]


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


def event_ms(callback: AnyCallback) -> int:
    """Return the callback's event time: `sendts`, else the envelope's `notifyMs`."""
    payload = callback.payload
    return payload.sendts if payload.sendts is not None else (callback.notifyMs or 0)


def apply(recording: Recording, callback: AnyCallback, *, late: bool = False) -> Derived:
    """Fold one callback, released in order (or late), into the recording; return the derived events."""
    recipes: Recipes = []
    apply_into(recording, callback, late, recipes)
    return [build(recipe) for recipe in recipes]


def apply_into(recording: Recording, callback: AnyCallback, late: bool, out: Recipes) -> None:
    """Fold one callback into the recording as `apply` does; append its derived events to `out`, unbuilt."""
    payload = callback.payload
    at_ms = payload.sendts
    if at_ms is None:
        at_ms = callback.notifyMs or 0
    uid = payload.uid
    sequence = payload.sequence
    key: OrderKey = (at_ms, uid, sequence)
    # What every callback tells: its delivery, the channel, the earliest uid, the span of event times.
    recording.events_applied += 1
    cname = recording.cname
    if not cname:
        cname = recording.cname = payload.cname
    last_ms = recording.last_event_ms
    if last_ms is None or recording.first_event_ms is None:  # the first callback applied
        recording.first_event_ms = recording.last_event_ms = at_ms
        recording.first_uid = (key, uid)
    elif at_ms > last_ms:  # the common case: nothing earlier to compare with
        recording.last_event_ms = at_ms
    elif at_ms <= recording.first_event_ms:  # the earliest key has the earliest time
        recording.first_event_ms = at_ms
        first_uid = recording.first_uid
        if first_uid is None or key < first_uid[0]:
            recording.first_uid = (key, uid)
    HANDLERS[type(callback)](recording, callback, key, Origin(recording.sid, cname, uid, sequence, at_ms, late), out)


def build(recipe: Recipe) -> DerivedEvent:
    """Build the derived event a recipe describes."""
    return recipe()


def _newer(current: tuple[OrderKey, Any] | None, key: OrderKey) -> bool:
    return current is None or key > current[0]


#: The spec's status codes along the lifecycle (`codes.status_rank`), and names, as plain dicts (the lookups of
#: every status change); a status the spec does not list ranks as its number and is named after it.
_STATUS_RANKS: dict[int, int] = {status: codes.status_rank(status) for status in codes.STATUS_NAMES}
_STATUS_NAMES: dict[int, str] = dict(codes.STATUS_NAMES)
_TERMINAL_STATUSES = codes.TERMINAL_STATUSES
#: eventType → what a status change it causes names as its cause ("40 recorder_started").
_CAUSES: dict[int, str] = {event_type: f"{event_type} {name}" for event_type, name in codes.EVENT_NAMES.items()}


def _move_status(recording: Recording, to_status: int, event_type: int, origin: Origin, out: Recipes) -> None:
    """Raise the status to `to_status` unless it is terminal or already as far along the lifecycle."""
    from_status = recording.status
    if from_status in _TERMINAL_STATUSES:
        return
    if _STATUS_RANKS.get(to_status, to_status) <= _STATUS_RANKS.get(from_status, from_status):
        return
    recording.status = to_status
    out.append(_status_changed(origin, from_status, to_status, event_type))


def _status_changed(origin: Origin, from_status: int, to_status: int, event_type: int) -> Recipe:
    # Apart from `_move_status`, which mostly returns early: a closure's variables become cells on every call.
    return lambda: StatusChanged.of(
        origin,
        from_status=from_status,
        to_status=to_status,
        to_status_name=_STATUS_NAMES.get(to_status) or f"status_{to_status}",
        cause=_CAUSES.get(event_type) or f"{event_type} unknown",
    )


def _raise_status(recording: Recording, callback: AnyCallback, key: OrderKey, origin: Origin, out: Recipes) -> None:
    event_type = callback.eventType
    _move_status(recording, _STATUS_FLOORS[event_type], event_type, origin, out)


#: Lifecycle eventType → the status it raises to at least (`codes.STATUS_FLOOR_BY_EVENT_TYPE`), as a plain dict.
_STATUS_FLOORS: dict[int, int] = dict(codes.STATUS_FLOOR_BY_EVENT_TYPE)


def _on_status_update(
    recording: Recording,
    callback: CloudRecordingStatusUpdate | compiled.CloudRecordingStatusUpdate,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    details = callback.payload.details
    if details.recordingMode is not None and _newer(recording.recording_mode, key):
        recording.recording_mode = (key, details.recordingMode)
    _add_files(recording, details.fileList, key)  # type: ignore[arg-type]  # a tuple by then: see FileList
    _move_status(recording, details.status, 3, origin, out)


def _on_error(
    recording: Recording,
    callback: CloudRecordingError | compiled.CloudRecordingError,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    details = callback.payload.details
    fatal = details.errorLevel == codes.FATAL_ERROR_LEVEL
    recording.errors += 1
    recording.fatal_errors += fatal
    if _newer(recording.last_error, key):
        error = {
            "module": details.module,
            "code": details.errorCode,
            "level": details.errorLevel,
            "message": details.errorMsg,
            "at_ms": key[0],
        }
        recording.last_error = (key, trusted(ErrorRecord, error))
    out.append(
        lambda: RecordingErrored.of(
            origin,
            module=details.module,
            error_level=details.errorLevel,
            error_code=details.errorCode,
            stat=details.stat,
            message=details.errorMsg,
            fatal=fatal,
        )
    )


def _on_warning(
    recording: Recording,
    callback: CloudRecordingWarning | compiled.CloudRecordingWarning,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    details = callback.payload.details
    recording.warnings += 1
    if _newer(recording.last_warning, key):
        warning = {"module": details.module, "code": details.warnCode, "level": None, "message": "", "at_ms": key[0]}
        recording.last_warning = (key, trusted(ErrorRecord, warning))
    out.append(lambda: RecordingWarned.of(origin, module=details.module, warn_code=details.warnCode))


#: What `fileList` holds in either form once decoded: the compiled one turns a string or null into a tuple in
#: `__post_init__`, as the contract's validator does (its declared type still says `str | ... | None`).
FileList = tuple[UploadedFile | compiled.UploadedFile, ...]


def _add_files(recording: Recording, files: FileList, key: OrderKey) -> tuple[UploadedFileInfo, ...]:
    """Record the files a callback lists; return them as UploadedFileInfo."""
    infos = []
    known = recording.files
    for file in files:
        info = _file_info(file)
        infos.append(info)
        current = known.get(info.file_name)
        # A name alone (events 3, 4) never replaces the full entry of 31/32.
        if current is None or (key > current[0] and info.track_type is not None):
            known[info.file_name] = (key, info)
    return tuple(infos)


def _file_info(file: UploadedFile | compiled.UploadedFile) -> UploadedFileInfo:
    return UploadedFileInfo.of(
        file_name=file.fileName,
        track_type=file.trackType,
        uid=file.uid,
        mixed_all_user=file.mixedAllUser,
        is_playable=file.isPlayable,
        slice_start_time=file.sliceStartTime,
    )


FileEvent = (
    CloudRecordingFileInfos
    | Uploaded
    | Backuped
    | compiled.CloudRecordingFileInfos
    | compiled.Uploaded
    | compiled.Backuped
)


def _on_files(recording: Recording, callback: FileEvent, key: OrderKey, origin: Origin, out: Recipes) -> None:
    infos = _add_files(recording, callback.payload.details.fileList, key)  # type: ignore[arg-type]  # see FileList
    event_type = callback.eventType
    # 4 reports the first M3U8; 31 and 32 that every file is uploaded, 32 some via the backup cloud.
    out.append(lambda: FilesUploaded.of(origin, files=infos, all_uploaded=event_type != 4, via_backup=event_type == 32))
    _raise_status(recording, callback, key, origin, out)


def _on_exit(
    recording: Recording, callback: SessionExit | compiled.SessionExit, key: OrderKey, origin: Origin, out: Recipes
) -> None:
    exit_status = callback.payload.details.exitStatus
    if _newer(recording.exit_status, key):
        recording.exit_status = (key, exit_status)
    # Anything but the documented 0 (normal) is taken as abnormal.
    to_status = codes.STATUS_BY_EXIT_STATUS.get(exit_status, 20)
    _move_status(recording, to_status, 11, origin, out)
    if not recording.ended:
        recording.ended = True
        ended = summary(recording, key[0])
        out.append(lambda: SessionEnded.of(origin, summary=ended))


def summary(recording: Recording, ended_ms: int) -> SessionSummary:
    """Summarise the recording as it stands, for `session_ended` and `session_expired`."""
    return SessionSummary.of(
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


def _on_failover(
    recording: Recording,
    callback: SessionFailover | compiled.SessionFailover,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    new_uid = str(callback.payload.details.newUid)
    # A failover notice sent twice (once per uid, spec README "Failover") is one failover.
    if any(record.new_uid == new_uid for record in recording.failovers):
        return
    notice_uid = callback.payload.uid
    old_uid = notice_uid if notice_uid != new_uid else recording.uid
    record = trusted(FailoverRecord, {"old_uid": old_uid, "new_uid": new_uid, "at_ms": key[0]})
    failovers = recording.failovers
    failovers.append(record)
    if len(failovers) > 1 and (failovers[-2].at_ms, failovers[-2].new_uid) > (record.at_ms, new_uid):
        failovers.sort(key=lambda r: (r.at_ms, r.new_uid))  # a failover reported after a later one
    count = len(failovers)
    out.append(lambda: FailedOver.of(origin, old_uid=old_uid, new_uid=new_uid, failovers=count))


def _on_progress(
    recording: Recording,
    callback: UploadingProgress | compiled.UploadingProgress,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    progress = callback.payload.details.progress
    current = recording.upload_progress
    if current is None or key > current[0]:  # _newer, inline: once a minute per recording
        recording.upload_progress = (key, progress)
    out.append(lambda: UploadProgressed.of(origin, progress=progress))


def _on_leave(
    recording: Recording, callback: RecorderLeave | compiled.RecorderLeave, key: OrderKey, origin: Origin, out: Recipes
) -> None:
    leave_code = callback.payload.details.leaveCode
    if _newer(recording.leave_code, key):
        recording.leave_code = (key, leave_code)
    out.append(lambda: RecorderLeft.of(origin, leave_code=leave_code, reasons=codes.leave_reasons(leave_code)))
    _raise_status(recording, callback, key, origin, out)


def _on_slice_start(
    recording: Recording,
    callback: RecorderSliceStart | compiled.RecorderSliceStart,
    key: OrderKey,
    origin: Origin,
    out: Recipes,
) -> None:
    details = callback.payload.details
    gap_ms = details.startUtcMs - details.discontinueUtcMs
    identity = (details.streamUid, details.trackType, details.discontinueUtcMs, details.startUtcMs)
    # Equal times open a normal slice; the same hole reported twice (by two uids) counts once.
    if gap_ms <= 0 or identity in recording.discontinuities:
        return
    recording.discontinuities.add(identity)
    recording.discontinuity_ms += gap_ms
    out.append(
        lambda: SliceDiscontinuityDetected.of(
            origin,
            stream_uid=details.streamUid,
            track_type=details.trackType,
            gap_ms=gap_ms,
            discontinue_utc_ms=details.discontinueUtcMs,
            start_utc_ms=details.startUtcMs,
        )
    )


StreamEvent = (
    RecorderAudioStreamStateChanged
    | RecorderVideoStreamStateChanged
    | compiled.RecorderAudioStreamStateChanged
    | compiled.RecorderVideoStreamStateChanged
)


#: The media whose stream state events 43 and 44 report.
_MEDIA: Mapping[int, Media] = {43: "audio", 44: "video"}


def _on_stream_state(recording: Recording, callback: StreamEvent, key: OrderKey, origin: Origin, out: Recipes) -> None:
    media = _MEDIA[callback.eventType]
    details = callback.payload.details
    changed_at = details.UtcMs if details.UtcMs is not None else key[0]
    stream_key = (changed_at, key[1], key[2])
    receiving = details.state == STREAM_RECEIVING
    streams = recording.streams[media]
    stream_uid = details.streamUid
    current = streams.get(stream_uid)
    if current is not None and stream_key <= current[0]:
        return  # an older report than the one kept
    streams[stream_uid] = (stream_key, receiving, changed_at)
    if current is not None and current[1] == receiving:
        return  # a newer report of the same state (a restarted recorder says it again): nothing changed
    out.append(_stream_state_changed(origin, stream_uid, media, receiving, changed_at))


def _stream_state_changed(origin: Origin, stream_uid: str, media: Media, receiving: bool, changed_at: int) -> Recipe:
    # Apart from `_on_stream_state`, which mostly returns early: a closure's variables become cells on every call.
    return lambda: StreamStateChanged.of(
        origin, stream_uid=stream_uid, media=media, receiving=receiving, changed_at_ms=changed_at
    )


def _on_vod_triggered(
    recording: Recording, callback: VodTriggered | compiled.VodTriggered, key: OrderKey, origin: Origin, out: Recipes
) -> None:
    recording.vod_triggered = True
    out.append(lambda: VodUploadTriggered.of(origin))


def _on_unknown(recording: Recording, callback: UnknownEvent, key: OrderKey, origin: Origin, out: Recipes) -> None:
    recording.unknown_events += 1
    details = callback.payload.details.model_dump()
    event_type = callback.eventType
    out.append(lambda: UnknownEventReceived.of(origin, event_type=event_type, details=details))


def _on_vod_started(
    recording: Recording, callback: VodStarted | compiled.VodStarted, key: OrderKey, origin: Origin, out: Recipes
) -> None:
    video_id = callback.payload.details.aliVodInfo.videoId
    if _newer(recording.vod_video_id, key):
        recording.vod_video_id = (key, video_id)
    out.append(lambda: VodUploadStarted.of(origin, video_id=video_id))


Handler = Callable[[Recording, Any, OrderKey, Origin, Recipes], None]

#: Callback class → handler: one row per documented eventType (spec "回调事件") and the pass-through.
#: A table, not a `match`: one lookup instead of up to 17 isinstance checks per callback, and a unit test
#: proves every class of `schemas.callbacks.Callback` has its row. Each compiled twin
#: (`schemas.compiled`) shares its model's row.
_BY_EVENT_TYPE: Mapping[int, Handler] = {
    1: _on_error,  # CloudRecordingError
    2: _on_warning,  # CloudRecordingWarning
    3: _on_status_update,  # CloudRecordingStatusUpdate
    4: _on_files,  # CloudRecordingFileInfos
    11: _on_exit,  # SessionExit
    12: _on_failover,  # SessionFailover
    30: _raise_status,  # UploaderStarted
    31: _on_files,  # Uploaded
    32: _on_files,  # Backuped
    33: _on_progress,  # UploadingProgress
    40: _raise_status,  # RecorderStarted
    41: _on_leave,  # RecorderLeave
    42: _on_slice_start,  # RecorderSliceStart
    43: _on_stream_state,  # RecorderAudioStreamStateChanged
    44: _on_stream_state,  # RecorderVideoStreamStateChanged
    60: _on_vod_started,  # VodStarted
    61: _on_vod_triggered,  # VodTriggered
}
HANDLERS: Mapping[type[Envelope] | type[compiled.Envelope], Handler] = {
    **{cls: _BY_EVENT_TYPE[number] for number, cls in EVENT_TYPES.items()},
    **{cls: _BY_EVENT_TYPE[number] for number, cls in compiled.EVENT_TYPES.items()},
    UnknownEvent: _on_unknown,  # 13, 45, 70–73, 80/81, 90, 100, 1001, ...
}
