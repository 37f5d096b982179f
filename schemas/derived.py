"""Derived events: what the processor emits downstream, one class per kind, each with a deterministic id.

The id is built from the inputs only (`{sid}:{uid}:{sequence}:{kind}`), so a replay or a restarted worker
re-emits byte-identical ids and consumers can deduplicate on `event_id`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, Self, TypeVar, Union

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Final = 1


def event_id(sid: str, uid: str, position: int | str, kind: str) -> str:
    """Return the id of the derived event of `kind` at `position` (a `sequence`, or a span "from-to") of a uid."""
    return f"{sid}:{uid}:{position}:{kind}"


M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], fields: dict[str, Any]) -> M:
    """Build a model from every one of its fields, already of their types, without validating them.

    The one place that skips pydantic's validation: it costs 1-4 µs a model, more than the rest of a callback's
    fold, and `model_construct` (pydantic's public way around it) costs more still, walking every field for its
    alias and default. Every value comes from validated callbacks and typed constructors (`of`), and unit tests
    prove that each model built so equals the validated one, field for field, fields set included.
    """
    model = _new(cls)
    _set(model, "__dict__", fields)
    # Every field counts as set (only `exclude_unset` reads this): one set per class, never mutated in place.
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = set(cls.model_fields)
    _set(model, "__pydantic_fields_set__", names)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


_new = object.__new__
_set = object.__setattr__
#: Each class's field names, for `__pydantic_fields_set__`.
_FIELD_NAMES: dict[type[BaseModel], set[str]] = {}
#: Each derived event class's `kind`, read once.
_KINDS: dict[type[BaseModel], str] = {}


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
    def kind_name(cls) -> str:
        """Return the `kind` this class stands for."""
        kind = _KINDS.get(cls)
        if kind is None:
            kind = _KINDS[cls] = str(cls.model_fields["kind"].default)
        return kind


E = TypeVar("E", bound=DerivedEvent)


class Origin(msgspec.Struct, frozen=True, gc=False):  # one per callback: builds in a seventh of a dataclass's time
    """The delivery behind the events one callback derives: the fields they all share."""

    sid: str
    cname: str
    uid: str
    sequence: int
    #: Event time, Unix ms (the callback's `sendts`).
    at_ms: int
    late: bool

    def derive(self, cls: type[E], own: dict[str, Any]) -> E:
        """Build the event of class `cls` this delivery derives, from its `own` fields (in the model's order)."""
        sid, uid, sequence = self.sid, self.uid, self.sequence
        kind = _KINDS.get(cls) or cls.kind_name()
        # Pydantic serialises `__dict__` in its own order, so this order is the JSON's: the one the derived topic
        # has always carried (the defaults, the event's own fields, then `at_ms`, `sid`, `event_id`).
        fields = {
            "schema_version": SCHEMA_VERSION,
            "cname": self.cname,
            "uid": uid,
            "sequence": sequence,
            "late": self.late,
            "kind": kind,
            **own,
            "at_ms": self.at_ms,
            "sid": sid,
            "event_id": f"{sid}:{uid}:{sequence}:{kind}",  # event_id(), inline: once per derived event
        }
        return trusted(cls, fields)


class StatusChanged(DerivedEvent):
    kind: Literal["status_changed"] = "status_changed"
    from_status: int
    to_status: int
    to_status_name: str
    #: The callback that moved it: "40 recorder_started".
    cause: str

    @classmethod
    def of(cls, origin: Origin, *, from_status: int, to_status: int, to_status_name: str, cause: str) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(
            cls, {"from_status": from_status, "to_status": to_status, "to_status_name": to_status_name, "cause": cause}
        )


class FailedOver(DerivedEvent):
    kind: Literal["failover"] = "failover"
    old_uid: str
    new_uid: str
    #: Failovers of this recording so far, this one included.
    failovers: int

    @classmethod
    def of(cls, origin: Origin, *, old_uid: str, new_uid: str, failovers: int) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"old_uid": old_uid, "new_uid": new_uid, "failovers": failovers})


class SliceDiscontinuityDetected(DerivedEvent):
    kind: Literal["slice_discontinuity"] = "slice_discontinuity"
    stream_uid: str
    track_type: str
    gap_ms: int
    discontinue_utc_ms: int
    start_utc_ms: int

    @classmethod
    def of(
        cls,
        origin: Origin,
        *,
        stream_uid: str,
        track_type: str,
        gap_ms: int,
        discontinue_utc_ms: int,
        start_utc_ms: int,
    ) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(
            cls,
            {
                "stream_uid": stream_uid,
                "track_type": track_type,
                "gap_ms": gap_ms,
                "discontinue_utc_ms": discontinue_utc_ms,
                "start_utc_ms": start_utc_ms,
            },
        )


class StreamStateChanged(DerivedEvent):
    kind: Literal["stream_state_changed"] = "stream_state_changed"
    stream_uid: str
    media: Literal["audio", "video"]
    receiving: bool
    changed_at_ms: int

    @classmethod
    def of(
        cls, origin: Origin, *, stream_uid: str, media: Literal["audio", "video"], receiving: bool, changed_at_ms: int
    ) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(
            cls, {"stream_uid": stream_uid, "media": media, "receiving": receiving, "changed_at_ms": changed_at_ms}
        )


class UploadedFileInfo(BaseModel):
    """One recorded file as reported by events 3, 4, 31 or 32."""

    model_config = ConfigDict(frozen=True)

    file_name: str
    track_type: str | None = None
    uid: str | None = None
    mixed_all_user: bool | None = None
    is_playable: bool | None = None
    slice_start_time: int | None = None

    @classmethod
    def of(
        cls,
        *,
        file_name: str,
        track_type: str | None,
        uid: str | None,
        mixed_all_user: bool | None,
        is_playable: bool | None,
        slice_start_time: int | None,
    ) -> Self:
        """Build the info of one file a callback lists."""
        fields = {
            "file_name": file_name,
            "track_type": track_type,
            "uid": uid,
            "mixed_all_user": mixed_all_user,
            "is_playable": is_playable,
            "slice_start_time": slice_start_time,
        }
        return trusted(cls, fields)


class FilesUploaded(DerivedEvent):
    kind: Literal["files_uploaded"] = "files_uploaded"
    files: tuple[UploadedFileInfo, ...]
    #: True for 31/32 (every file uploaded), False for 4 (the first M3U8).
    all_uploaded: bool
    #: True for 32: at least one slice went through the vendor's backup cloud.
    via_backup: bool

    @classmethod
    def of(cls, origin: Origin, *, files: tuple[UploadedFileInfo, ...], all_uploaded: bool, via_backup: bool) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"files": files, "all_uploaded": all_uploaded, "via_backup": via_backup})


class UploadProgressed(DerivedEvent):
    kind: Literal["upload_progress"] = "upload_progress"
    #: Uploaded / recorded × 10000.
    progress: int

    @classmethod
    def of(cls, origin: Origin, *, progress: int) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"progress": progress})


class RecordingErrored(DerivedEvent):
    kind: Literal["recording_error"] = "recording_error"
    module: int
    error_level: int
    error_code: int
    stat: int
    message: str
    fatal: bool

    @classmethod
    def of(
        cls, origin: Origin, *, module: int, error_level: int, error_code: int, stat: int, message: str, fatal: bool
    ) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(
            cls,
            {
                "module": module,
                "error_level": error_level,
                "error_code": error_code,
                "stat": stat,
                "message": message,
                "fatal": fatal,
            },
        )


class RecordingWarned(DerivedEvent):
    kind: Literal["recording_warning"] = "recording_warning"
    module: int
    warn_code: int

    @classmethod
    def of(cls, origin: Origin, *, module: int, warn_code: int) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"module": module, "warn_code": warn_code})


class RecorderLeft(DerivedEvent):
    kind: Literal["recorder_left"] = "recorder_left"
    leave_code: int
    reasons: tuple[str, ...]

    @classmethod
    def of(cls, origin: Origin, *, leave_code: int, reasons: tuple[str, ...]) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"leave_code": leave_code, "reasons": reasons})


class VodUploadStarted(DerivedEvent):
    kind: Literal["vod_started"] = "vod_started"
    video_id: str

    @classmethod
    def of(cls, origin: Origin, *, video_id: str) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"video_id": video_id})


class VodUploadTriggered(DerivedEvent):
    kind: Literal["vod_triggered"] = "vod_triggered"

    @classmethod
    def of(cls, origin: Origin) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {})


class SequenceGapDetected(DerivedEvent):
    kind: Literal["sequence_gap"] = "sequence_gap"
    #: First and last missing `sequence` of the recorder uid, inclusive.
    missing_from: int
    missing_to: int
    missing_count: int
    #: Why the buffer stopped waiting.
    reason: Literal["timeout", "buffer_full", "end_of_input"]

    @classmethod
    def of(
        cls,
        *,
        sid: str,
        cname: str,
        uid: str,
        at_ms: int,
        missing_from: int,
        missing_to: int,
        reason: Literal["timeout", "buffer_full", "end_of_input"],
    ) -> Self:
        """Build the event of a hole given up on (validated: one per hole, not per delivery)."""
        return cls(
            event_id=event_id(sid, uid, f"{missing_from}-{missing_to}", "sequence_gap"),
            sid=sid,
            cname=cname,
            uid=uid,
            at_ms=at_ms,
            missing_from=missing_from,
            missing_to=missing_to,
            missing_count=missing_to - missing_from + 1,
            reason=reason,
        )


class UnknownEventReceived(DerivedEvent):
    kind: Literal["unknown_event"] = "unknown_event"
    event_type: int
    details: dict[str, Any]

    @classmethod
    def of(cls, origin: Origin, *, event_type: int, details: dict[str, Any]) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"event_type": event_type, "details": details})


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

    @classmethod
    def of(
        cls,
        *,
        status: int,
        exit_status: int | None,
        duration_ms: int,
        files: tuple[str, ...],
        discontinuities: int,
        discontinuity_ms: int,
        failovers: int,
        gaps: int,
        duplicates: int,
        fatal_errors: int,
    ) -> Self:
        """Build the summary of a recording as it stands."""
        fields = {
            "status": status,
            "exit_status": exit_status,
            "duration_ms": duration_ms,
            "files": files,
            "discontinuities": discontinuities,
            "discontinuity_ms": discontinuity_ms,
            "failovers": failovers,
            "gaps": gaps,
            "duplicates": duplicates,
            "fatal_errors": fatal_errors,
        }
        return trusted(cls, fields)


class SessionEnded(DerivedEvent):
    kind: Literal["session_ended"] = "session_ended"
    summary: SessionSummary

    @classmethod
    def of(cls, origin: Origin, *, summary: SessionSummary) -> Self:
        """Build the event a delivery derives."""
        return origin.derive(cls, {"summary": summary})


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
