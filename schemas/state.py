"""RecordingState: the snapshot of one recording, as `replay --summary` prints it and the state topic carries it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.derived import SCHEMA_VERSION, UploadedFileInfo


class StreamState(BaseModel):
    """Whether the recorder is receiving one user's audio or video (events 43/44)."""

    model_config = ConfigDict(frozen=True)

    stream_uid: str
    media: Literal["audio", "video"]
    receiving: bool
    changed_at_ms: int


class FailoverRecord(BaseModel):
    """One high-availability restart (event 12)."""

    model_config = ConfigDict(frozen=True)

    old_uid: str
    new_uid: str
    at_ms: int


class ErrorRecord(BaseModel):
    """The latest error or warning (events 1, 2)."""

    model_config = ConfigDict(frozen=True)

    module: int
    code: int
    level: int | None
    message: str
    at_ms: int


class RecordingState(BaseModel):
    """Everything known about one recording (`sid`).

    The first fields, `sid` to `fatal_errors`, are the contract of `replay --summary`.
    """

    model_config = ConfigDict(frozen=True)

    sid: str
    cname: str
    status: int
    #: The active recorder uid (a string; after a failover, the latest `newUid`).
    uid: str
    failovers: int
    discontinuities: int
    discontinuity_ms: int
    #: Sorted distinct file names from events 3, 4, 31 and 32.
    files: tuple[str, ...]
    duplicates: int
    #: Numbers from 0 to `last_sequence` never received, whatever the uid.
    missing_sequences: tuple[int, ...]
    last_sequence: int | None
    exit_status: int | None
    fatal_errors: int

    schema_version: Literal[1] = SCHEMA_VERSION
    status_name: str
    uids: tuple[str, ...]
    failover_history: tuple[FailoverRecord, ...]
    #: Discontinuity count per "streamUid/trackType".
    discontinuities_by_track: dict[str, int]
    file_details: tuple[UploadedFileInfo, ...]
    streams: tuple[StreamState, ...]
    upload_progress: int | None
    recording_mode: int | None
    errors: int
    warnings: int
    last_error: ErrorRecord | None
    last_warning: ErrorRecord | None
    leave_code: int | None
    leave_reasons: tuple[str, ...]
    vod_video_id: str | None
    vod_triggered: bool
    unknown_events: int
    first_event_ms: int | None
    last_event_ms: int | None
    ended: bool
    #: Callbacks folded into the state (duplicates excluded).
    events_applied: int
    #: Holes given up on (timeout, full buffer or end of input).
    gaps: int
    #: Deliveries applied after their hole had been skipped.
    late_events: int
    #: Deliveries still waiting in the reorder buffer for a missing sequence number.
    buffered: int


#: Fields that describe how the callbacks were delivered (duplicates, lateness, waiting), not the recording.
#: Two deliveries of the same session, in any order and with any duplicates, agree on everything else.
DELIVERY_FIELDS = frozenset({"duplicates", "gaps", "late_events", "buffered"})

#: The fields `replay --summary` prints (the contract).
SUMMARY_FIELDS = (
    "sid",
    "cname",
    "status",
    "uid",
    "failovers",
    "discontinuities",
    "discontinuity_ms",
    "files",
    "duplicates",
    "missing_sequences",
    "last_sequence",
    "exit_status",
    "fatal_errors",
)
