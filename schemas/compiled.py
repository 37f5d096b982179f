"""Compiled twins of the callback models: msgspec Structs that the hot path decodes NCS bodies into.

`schemas.callbacks` stays the contract (JSON Schema, lax parsing, every quirk). These Structs cover only its
canonical subset: the documented field types exactly (numbers as numbers, strings as strings), the documented
field names (no legacy `notificationId`/`eventMs`/`utcMs`) and the extras real senders add (`msgName`,
a top-level `sid`, `serviceScene`). msgspec validates that subset while it parses, about as fast as orjson
only parses, and `decode_fast` hands anything outside it to `schemas.decode.decode`, which then decides. So
both say the same of every body: `tests/unit/schemas/test_compiled.py` checks it with arbitrary and realistic bodies.
Field names and meanings are the pydantic twins' (same attribute names), so the core reads either alike.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar, Union, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec.structs import force_setattr

from schemas.callbacks import Callback
from schemas.decode import MAX_SAFE_INTEGER, Decoded, decode

#: Every documented integer: within ±(2**53-1), as the contract requires of documented fields.
SafeInt = Annotated[int, Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
#: An extra field real senders add: kept out of the way, any string.
Extra = str | UnsetType


class Wire(Struct, frozen=True, gc=False, kw_only=True, forbid_unknown_fields=True):
    """Base of every twin: immutable, untracked by the garbage collector (no cycles), no unknown fields."""


class UploadedFile(Wire, kw_only=True, frozen=True):
    """Twin of `schemas.callbacks.UploadedFile`."""

    fileName: str
    trackType: str | None = None
    uid: str | None = None
    mixedAllUser: bool | None = None
    isPlayable: bool | None = None
    sliceStartTime: SafeInt | None = None


class Details(Wire, kw_only=True, frozen=True):
    """Base of the `details` twins: `msgName` is the one extra every body carries."""

    msgName: Extra = UNSET


class _WithFiles(Details, kw_only=True, frozen=True):
    # The contract's BeforeValidator `_file_list`: a string (events 3, 4) is one file, "" and null none.
    fileList: str | tuple[UploadedFile, ...] | None = ()

    def __post_init__(self) -> None:
        files = self.fileList
        if not isinstance(files, tuple):
            force_setattr(self, "fileList", (UploadedFile(fileName=files),) if files else ())


class ErrorDetails(Details, kw_only=True, frozen=True):
    module: SafeInt
    errorLevel: SafeInt
    errorCode: SafeInt
    stat: SafeInt = 0
    errorMsg: str = ""


class WarningDetails(Details, kw_only=True, frozen=True):
    module: SafeInt
    warnCode: SafeInt


class StatusUpdateDetails(_WithFiles, kw_only=True, frozen=True):
    status: SafeInt
    recordingMode: SafeInt | None = None


class FileInfosDetails(_WithFiles, kw_only=True, frozen=True):
    pass


class SessionExitDetails(Details, kw_only=True, frozen=True):
    exitStatus: SafeInt


class SessionFailoverDetails(Details, kw_only=True, frozen=True):
    newUid: SafeInt


class ModuleStatusDetails(Details, kw_only=True, frozen=True):
    status: SafeInt = 0


class UploadResultDetails(_WithFiles, kw_only=True, frozen=True):
    status: SafeInt = 0


class UploadingProgressDetails(Details, kw_only=True, frozen=True):
    progress: SafeInt


class RecorderLeaveDetails(Details, kw_only=True, frozen=True):
    leaveCode: SafeInt


class SliceStartDetails(Details, kw_only=True, frozen=True):
    startUtcMs: SafeInt
    discontinueUtcMs: SafeInt
    mixedAllUser: bool | None = None
    streamUid: str = "0"
    trackType: str = "audio_and_video"


class StreamStateDetails(Details, kw_only=True, frozen=True):
    streamUid: str = "0"
    state: SafeInt
    UtcMs: SafeInt | None = None


class AliVodInfo(Wire, kw_only=True, frozen=True):
    videoId: str = ""


class VodStartedDetails(Details, kw_only=True, frozen=True):
    aliVodInfo: AliVodInfo = msgspec.field(default_factory=AliVodInfo)


class NoDetails(Details, kw_only=True, frozen=True):
    pass


D = TypeVar("D", bound=Details)


class Payload(Wire, Generic[D], kw_only=True, frozen=True):
    """Twin of `schemas.callbacks.Payload`."""

    cname: str = ""
    uid: str = ""
    sid: Annotated[str, Meta(min_length=1)]
    sequence: Annotated[int, Meta(ge=0, le=MAX_SAFE_INTEGER)]
    sendts: SafeInt | None = None
    serviceType: SafeInt | None = None
    details: D


class Envelope(Wire, tag_field="eventType", kw_only=True, frozen=True):
    """Twin of `schemas.callbacks.Envelope`: Cloud Recording only (another productId is the contract's case)."""

    #: The tag msgspec dispatched on, readable like the contract's `eventType` field.
    eventType: ClassVar[int]
    noticeId: str = ""
    productId: Literal[3] = 3  # CLOUD_RECORDING_PRODUCT_ID, spelled as the Literal it is
    notifyMs: SafeInt | None = None
    #: Real envelopes repeat `payload.sid` and add `serviceScene` (spec README "What real senders do").
    sid: Extra = UNSET
    serviceScene: Extra = UNSET


class CloudRecordingError(Envelope, tag=1, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 1
    payload: Payload[ErrorDetails]


class CloudRecordingWarning(Envelope, tag=2, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 2
    payload: Payload[WarningDetails]


class CloudRecordingStatusUpdate(Envelope, tag=3, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 3
    payload: Payload[StatusUpdateDetails]


class CloudRecordingFileInfos(Envelope, tag=4, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 4
    payload: Payload[FileInfosDetails]


class SessionExit(Envelope, tag=11, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 11
    payload: Payload[SessionExitDetails]


class SessionFailover(Envelope, tag=12, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 12
    payload: Payload[SessionFailoverDetails]


class UploaderStarted(Envelope, tag=30, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 30
    payload: Payload[ModuleStatusDetails]


class Uploaded(Envelope, tag=31, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 31
    payload: Payload[UploadResultDetails]


class Backuped(Envelope, tag=32, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 32
    payload: Payload[UploadResultDetails]


class UploadingProgress(Envelope, tag=33, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 33
    payload: Payload[UploadingProgressDetails]


class RecorderStarted(Envelope, tag=40, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 40
    payload: Payload[ModuleStatusDetails]


class RecorderLeave(Envelope, tag=41, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 41
    payload: Payload[RecorderLeaveDetails]


class RecorderSliceStart(Envelope, tag=42, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 42
    payload: Payload[SliceStartDetails]


class RecorderAudioStreamStateChanged(Envelope, tag=43, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 43
    payload: Payload[StreamStateDetails]


class RecorderVideoStreamStateChanged(Envelope, tag=44, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 44
    payload: Payload[StreamStateDetails]


class VodStarted(Envelope, tag=60, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 60
    payload: Payload[VodStartedDetails]


class VodTriggered(Envelope, tag=61, kw_only=True, frozen=True):
    eventType: ClassVar[int] = 61
    payload: Payload[NoDetails]


CompiledCallback = Union[  # noqa: UP007  # spelled out, as `schemas.callbacks.Callback`
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
]

#: What the core folds: a compiled twin when the body is canonical, else the contract's model.
AnyCallback = CompiledCallback | Callback

#: eventType → twin, as `schemas.callbacks.EVENT_TYPES`.
EVENT_TYPES: dict[int, type[Envelope]] = {cls.eventType: cls for cls in get_args(CompiledCallback)}

_DECODER: msgspec.json.Decoder[CompiledCallback] = msgspec.json.Decoder(CompiledCallback)


def decode_fast(raw: bytes | str) -> AnyCallback | Decoded:
    """Decode one NCS body as `schemas.decode.decode` does, compiled when the body is in the canonical subset."""
    try:
        return _DECODER.decode(raw)
    except Exception:  # any way out of the canonical subset (not only msgspec's errors): the contract decides
        return decode(raw)


def to_body(callback: CompiledCallback) -> dict[str, Any]:
    """Return the body the contract's model of this callback dumps (`model_dump(mode="json")`), extras aside."""
    body: dict[str, Any] = {
        "noticeId": callback.noticeId,
        "productId": callback.productId,
        "notifyMs": callback.notifyMs,
        "eventType": callback.eventType,
    }
    payload = msgspec.to_builtins(callback.payload)
    details = payload["details"]
    details.pop("msgName", None)
    if "fileList" in details:  # the contract's order: the shared fields first, then the subclass's
        details["fileList"] = list(details.pop("fileList"))
    body["payload"] = {name: payload[name] for name in _PAYLOAD_ORDER}
    return body


_PAYLOAD_ORDER = ("cname", "uid", "sid", "sequence", "sendts", "serviceType", "details")
