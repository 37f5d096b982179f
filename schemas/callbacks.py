"""NCS callback models: the envelope, the payload and one class per documented Cloud Recording eventType.

Field names are the vendor's own (camelCase), so a model reads like the document. Sources: Agora's
"云端录制 RESTful API 回调服务" and anyRTC's clone of it (`shared/spec/`); quirks from the spec summary's
"What real senders do" section. Every model keeps unknown fields (`extra="allow"`) and passes them through.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

#: productId of Cloud Recording in the NCS envelope.
CLOUD_RECORDING_PRODUCT_ID = 3


class Wire(BaseModel):
    """Base of every vendor model: frozen, lenient about number/string drift, keeps unknown fields."""

    # coerce_numbers_to_str: `uid`, `streamUid` are documented strings but arrive as numbers in the wild.
    # Lax mode (the default) already turns "123" into 123 and "true" into True where numbers/bools are documented.
    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


def _file_list(value: Any) -> Any:
    """Accept `fileList` as a string (events 3, 4), an array (31, 32) or null, whatever the event."""
    # The documents give a string for 3/4 and an array for 31/32; senders have mixed them up.
    if value is None:
        return []
    if isinstance(value, str):
        return [{"fileName": value}] if value else []
    return value


class UploadedFile(Wire):
    """One entry of `fileList` (events 31, 32; anyRTC "回调示列")."""

    fileName: str
    trackType: str | None = None
    uid: str | None = None
    mixedAllUser: bool | None = None
    isPlayable: bool | None = None
    sliceStartTime: int | None = None


FileList = Annotated[tuple[UploadedFile, ...], BeforeValidator(_file_list)]


# --- details, one class per eventType (section "回调事件") ---------------------------------------------


class ErrorDetails(Wire):
    """eventType 1 cloud_recording_error."""

    module: int
    errorLevel: int
    errorCode: int
    stat: int = 0
    errorMsg: str = ""


class WarningDetails(Wire):
    """eventType 2 cloud_recording_warning."""

    module: int
    warnCode: int


class StatusUpdateDetails(Wire):
    """eventType 3 cloud_recording_status_update."""

    status: int
    # 0 mixed, 1 individual in the Chinese page (the English page swaps them; spec README "Field drift").
    recordingMode: int | None = None
    fileList: FileList = ()


class FileInfosDetails(Wire):
    """eventType 4 cloud_recording_file_infos: the M3U8 was uploaded for the first time."""

    fileList: FileList = ()


class SessionExitDetails(Wire):
    """eventType 11 session_exit."""

    exitStatus: int


class SessionFailoverDetails(Wire):
    """eventType 12 session_failover: the recorder rejoined under `newUid` (a number; `uid` stays a string)."""

    newUid: int


class ModuleStatusDetails(Wire):
    """eventTypes 30 uploader_started and 40 recorder_started: `status` 0 is ok."""

    status: int = 0


class UploadResultDetails(Wire):
    """eventTypes 31 uploaded and 32 backuped: every file is uploaded (32: some via the backup cloud)."""

    status: int = 0
    fileList: FileList = ()


class UploadingProgressDetails(Wire):
    """eventType 33 uploading_progress: uploaded / recorded × 10000, once a minute."""

    progress: int


class RecorderLeaveDetails(Wire):
    """eventType 41 recorder_leave: `leaveCode` is an OR of LEAVE_CODE_* bits."""

    leaveCode: int


class SliceStartDetails(Wire):
    """eventType 42 recorder_slice_start: `discontinueUtcMs < startUtcMs` means a hole in the recording."""

    startUtcMs: int
    discontinueUtcMs: int
    mixedAllUser: bool | None = None
    streamUid: str = "0"
    trackType: str = "audio_and_video"


class StreamStateDetails(Wire):
    """eventTypes 43/44 recorder_{audio,video}_stream_state_changed: `state` 0 receiving, 1 not receiving."""

    streamUid: str = "0"
    state: int
    # Documented `UtcMs`, read as `utcMs` by real receivers (spec README "Field drift"): accept both.
    UtcMs: int | None = Field(default=None, validation_alias=AliasChoices("UtcMs", "utcMs"))


class AliVodInfo(Wire):
    """`aliVodInfo` of eventType 60."""

    videoId: str = ""


class VodStartedDetails(Wire):
    """eventType 60 vod_started."""

    aliVodInfo: AliVodInfo = AliVodInfo()


class NoDetails(Wire):
    """eventType 61 vod_triggered carries only `msgName`."""


D = TypeVar("D", bound=Wire)


class Payload(Wire, Generic[D]):
    """`payload`: the recording's identity, its per-sid `sequence`, the event time and the details."""

    cname: str = ""
    uid: str = ""
    sid: Annotated[str, Field(min_length=1)]
    # Per-sid counter from 0; a string in the legacy format (lax mode converts it). Never negative: the
    # reorder buffer counts from 0 and could not place a number below it.
    sequence: Annotated[int, Field(ge=0)]
    # Event time, Unix ms; may be absent in legacy bodies, where the envelope's time stands in.
    sendts: int | None = None
    serviceType: int | None = None
    details: D


class Envelope(Wire):
    """The NCS envelope shared by every callback (legacy names accepted: `notificationId`, `eventMs`)."""

    noticeId: str = Field(default="", validation_alias=AliasChoices("noticeId", "notificationId"))
    # The legacy format (before 2019-08) has no productId; it only ever carried Cloud Recording.
    productId: int = CLOUD_RECORDING_PRODUCT_ID
    notifyMs: int | None = Field(default=None, validation_alias=AliasChoices("notifyMs", "eventMs"))


class CloudRecordingError(Envelope):
    eventType: Literal[1]
    payload: Payload[ErrorDetails]


class CloudRecordingWarning(Envelope):
    eventType: Literal[2]
    payload: Payload[WarningDetails]


class CloudRecordingStatusUpdate(Envelope):
    eventType: Literal[3]
    payload: Payload[StatusUpdateDetails]


class CloudRecordingFileInfos(Envelope):
    eventType: Literal[4]
    payload: Payload[FileInfosDetails]


class SessionExit(Envelope):
    eventType: Literal[11]
    payload: Payload[SessionExitDetails]


class SessionFailover(Envelope):
    eventType: Literal[12]
    payload: Payload[SessionFailoverDetails]


class UploaderStarted(Envelope):
    eventType: Literal[30]
    payload: Payload[ModuleStatusDetails]


class Uploaded(Envelope):
    eventType: Literal[31]
    payload: Payload[UploadResultDetails]


class Backuped(Envelope):
    eventType: Literal[32]
    payload: Payload[UploadResultDetails]


class UploadingProgress(Envelope):
    eventType: Literal[33]
    payload: Payload[UploadingProgressDetails]


class RecorderStarted(Envelope):
    eventType: Literal[40]
    payload: Payload[ModuleStatusDetails]


class RecorderLeave(Envelope):
    eventType: Literal[41]
    payload: Payload[RecorderLeaveDetails]


class RecorderSliceStart(Envelope):
    eventType: Literal[42]
    payload: Payload[SliceStartDetails]


class RecorderAudioStreamStateChanged(Envelope):
    eventType: Literal[43]
    payload: Payload[StreamStateDetails]


class RecorderVideoStreamStateChanged(Envelope):
    eventType: Literal[44]
    payload: Payload[StreamStateDetails]


class VodStarted(Envelope):
    eventType: Literal[60]
    payload: Payload[VodStartedDetails]


class VodTriggered(Envelope):
    eventType: Literal[61]
    payload: Payload[NoDetails]


class UnknownEvent(Envelope):
    """Any other eventType (13, 45, 70–73, 80/81, 90, 100, 1001, ...): kept whole and passed through."""

    eventType: int
    payload: Payload[Wire]


#: eventType → model, the one table the decoder dispatches on (never on `msgName`: anyRTC's own
#: examples label 31 "backuped" and 32 "uploaded").
EVENT_TYPES: dict[int, type[Envelope]] = {
    1: CloudRecordingError,
    2: CloudRecordingWarning,
    3: CloudRecordingStatusUpdate,
    4: CloudRecordingFileInfos,
    11: SessionExit,
    12: SessionFailover,
    30: UploaderStarted,
    31: Uploaded,
    32: Backuped,
    33: UploadingProgress,
    40: RecorderStarted,
    41: RecorderLeave,
    42: RecorderSliceStart,
    43: RecorderAudioStreamStateChanged,
    44: RecorderVideoStreamStateChanged,
    60: VodStarted,
    61: VodTriggered,
}

Callback = Union[  # noqa: UP007  # the static twin of CALLBACK_TYPE below, for `match` + assert_never
    CloudRecordingError,
    CloudRecordingWarning,
    CloudRecordingStatusUpdate,
    CloudRecordingFileInfos,
    SessionExit,
    SessionFailover,
    UploaderStarted,
    Uploaded,
    Backuped,
    UploadingProgress,
    RecorderStarted,
    RecorderLeave,
    RecorderSliceStart,
    RecorderAudioStreamStateChanged,
    RecorderVideoStreamStateChanged,
    VodStarted,
    VodTriggered,
    UnknownEvent,
]


def _event_tag(value: Any) -> str:
    """Pick the union member from `eventType`, falling back to UnknownEvent for anything else."""
    raw = value.get("eventType") if isinstance(value, dict) else getattr(value, "eventType", None)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in EVENT_TYPES:
        return str(raw)
    return "unknown"


_TAGGED_MEMBERS = (
    *(Annotated[cls, Tag(str(n))] for n, cls in EVENT_TYPES.items()),
    Annotated[UnknownEvent, Tag("unknown")],
)
#: The runtime type pydantic validates against: the tagged union of every model above.
CALLBACK_TYPE: Any = Annotated[Union[_TAGGED_MEMBERS], Discriminator(_event_tag)]  # noqa: UP007
