"""Derived events: what the processor emits downstream, one class per kind, each with a deterministic id.

The id is built from the inputs only (`{sid}:{uid}:{sequence}:{kind}`), so a replay or a restarted worker
re-emits byte-identical ids and consumers can deduplicate on `event_id`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Final = 1


def event_id(sid: str, uid: str, position: int | str, kind: str) -> str:
    """Return the id of the derived event of `kind` at `position` (a `sequence`, or a span "from-to") of a uid."""
    return f"{sid}:{uid}:{position}:{kind}"


#: Each derived event class's field defaults, computed once (see `DerivedEvent.trusted`).
_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {}


class DerivedEvent(BaseModel):
    """Fields every derived event carries."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str
    sid: str
    cname: str = ""
    #: The recorder uid of the delivery behind this event.
    uid: str = ""
    #: The `payload.sequence` behind this event (None when no single delivery caused it).
    sequence: int | None = None
    #: Event time, Unix ms (the callback's `sendts`).
    at_ms: int
    #: True when the delivery arrived after its place in the sequence had been skipped as a gap.
    late: bool = False

    @classmethod
    def trusted(cls, fields: dict[str, Any]) -> Self:
        """Build an event from the core's own, already typed values, without validating them again.

        Validation costs ~1 µs an event, as much as the rest of the fold; the core builds every field from
        validated callbacks, and a property test re-validates every event the fold derives.
        """
        event = _new(cls)
        _set(event, "__dict__", {**_defaults(cls), **fields})
        # Every field counts as set (only `exclude_unset` reads this): one shared set, never mutated in place.
        _set(event, "__pydantic_fields_set__", _all_fields(cls))
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        return event

    @classmethod
    def kind_name(cls) -> str:
        """Return the `kind` this class stands for."""
        return str(_defaults(cls)["kind"])


_new = object.__new__
_set = object.__setattr__
#: Each class's field names, for `__pydantic_fields_set__`.
_FIELD_NAMES: dict[type[BaseModel], set[str]] = {}


def _all_fields(cls: type[BaseModel]) -> set[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = set(cls.model_fields)
    return names


def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        fields = cls.model_fields.items()
        defaults = _DEFAULTS[cls] = {name: info.default for name, info in fields if not info.is_required()}
    return defaults


class StatusChanged(DerivedEvent):
    kind: Literal["status_changed"] = "status_changed"
    from_status: int
    to_status: int
    to_status_name: str
    #: The callback that moved it: "40 recorder_started".
    cause: str


class FailedOver(DerivedEvent):
    kind: Literal["failover"] = "failover"
    old_uid: str
    new_uid: str
    #: Failovers of this recording so far, this one included.
    failovers: int


class SliceDiscontinuityDetected(DerivedEvent):
    kind: Literal["slice_discontinuity"] = "slice_discontinuity"
    stream_uid: str
    track_type: str
    gap_ms: int
    discontinue_utc_ms: int
    start_utc_ms: int


class StreamStateChanged(DerivedEvent):
    kind: Literal["stream_state_changed"] = "stream_state_changed"
    stream_uid: str
    media: Literal["audio", "video"]
    receiving: bool
    changed_at_ms: int


class UploadedFileInfo(BaseModel):
    """One recorded file as reported by events 3, 4, 31 or 32."""

    model_config = ConfigDict(frozen=True)

    file_name: str
    track_type: str | None = None
    uid: str | None = None
    mixed_all_user: bool | None = None
    is_playable: bool | None = None
    slice_start_time: int | None = None


class FilesUploaded(DerivedEvent):
    kind: Literal["files_uploaded"] = "files_uploaded"
    files: tuple[UploadedFileInfo, ...]
    #: True for 31/32 (every file uploaded), False for 4 (the first M3U8).
    all_uploaded: bool
    #: True for 32: at least one slice went through the vendor's backup cloud.
    via_backup: bool


class UploadProgressed(DerivedEvent):
    kind: Literal["upload_progress"] = "upload_progress"
    #: Uploaded / recorded × 10000.
    progress: int


class RecordingErrored(DerivedEvent):
    kind: Literal["recording_error"] = "recording_error"
    module: int
    error_level: int
    error_code: int
    stat: int
    message: str
    fatal: bool


class RecordingWarned(DerivedEvent):
    kind: Literal["recording_warning"] = "recording_warning"
    module: int
    warn_code: int


class RecorderLeft(DerivedEvent):
    kind: Literal["recorder_left"] = "recorder_left"
    leave_code: int
    reasons: tuple[str, ...]


class VodUploadStarted(DerivedEvent):
    kind: Literal["vod_started"] = "vod_started"
    video_id: str


class VodUploadTriggered(DerivedEvent):
    kind: Literal["vod_triggered"] = "vod_triggered"


class SequenceGapDetected(DerivedEvent):
    kind: Literal["sequence_gap"] = "sequence_gap"
    #: First and last missing `sequence` of the recorder uid, inclusive.
    missing_from: int
    missing_to: int
    missing_count: int
    #: Why the buffer stopped waiting.
    reason: Literal["timeout", "buffer_full", "end_of_input"]


class UnknownEventReceived(DerivedEvent):
    kind: Literal["unknown_event"] = "unknown_event"
    event_type: int
    details: dict[str, Any]


class SessionSummary(BaseModel):
    """The recording at its end, as carried by `session_ended`."""

    model_config = ConfigDict(frozen=True)

    status: int
    exit_status: int | None
    duration_ms: int
    files: tuple[str, ...]
    discontinuities: int
    discontinuity_ms: int
    failovers: int
    gaps: int
    duplicates: int
    fatal_errors: int


class SessionEnded(DerivedEvent):
    kind: Literal["session_ended"] = "session_ended"
    summary: SessionSummary


class SessionExpired(DerivedEvent):
    """A recording that sent nothing for the inactivity timeout and never exited: given up on and forgotten."""

    kind: Literal["session_expired"] = "session_expired"
    #: How long nothing had arrived, in processing time.
    idle_ms: int
    summary: SessionSummary


AnyDerivedEvent = Annotated[
    Union[  # noqa: UP007  # a discriminated union reads better spelled out
        StatusChanged,
        FailedOver,
        SliceDiscontinuityDetected,
        StreamStateChanged,
        FilesUploaded,
        UploadProgressed,
        RecordingErrored,
        RecordingWarned,
        RecorderLeft,
        VodUploadStarted,
        VodUploadTriggered,
        SequenceGapDetected,
        UnknownEventReceived,
        SessionEnded,
        SessionExpired,
    ],
    Field(discriminator="kind"),
]

#: What a consumer uses to read any record of the derived-events topic.
DERIVED_EVENT_ADAPTER: TypeAdapter[AnyDerivedEvent] = TypeAdapter(AnyDerivedEvent)
