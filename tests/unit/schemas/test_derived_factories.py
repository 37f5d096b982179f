"""Derived events built by their typed constructors (`of`, without validation) are the validated models."""

from __future__ import annotations

import typing
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from schemas.derived import (
    DERIVED_EVENT_ADAPTER,
    AnyDerivedEvent,
    DerivedEvent,
    FailedOver,
    FilesUploaded,
    Origin,
    RecorderLeft,
    RecordingErrored,
    RecordingWarned,
    SequenceGapDetected,
    SessionEnded,
    SessionExpired,
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

ints = st.integers(-(2**53) + 1, 2**53 - 1)
names = st.text(max_size=8)
origins = st.builds(Origin, sid=names, cname=names, uid=names, sequence=ints, at_ms=ints, late=st.booleans())
file_infos = st.builds(
    UploadedFileInfo.of,
    file_name=names,
    track_type=st.none() | names,
    uid=st.none() | names,
    mixed_all_user=st.none() | st.booleans(),
    is_playable=st.none() | st.booleans(),
    slice_start_time=st.none() | ints,
)
summaries = st.builds(
    SessionSummary.of,
    status=ints,
    exit_status=st.none() | ints,
    duration_ms=ints,
    files=st.lists(names, max_size=3).map(lambda files: tuple(sorted(files))),
    discontinuities=ints,
    discontinuity_ms=ints,
    failovers=ints,
    gaps=ints,
    duplicates=ints,
    fatal_errors=ints,
)

#: Each kind built from a delivery → strategies of its own fields (what its `of` takes after the origin).
OWN_FIELDS: dict[type[DerivedEvent], dict[str, st.SearchStrategy[Any]]] = {
    StatusChanged: {"from_status": ints, "to_status": ints, "to_status_name": names, "cause": names},
    FailedOver: {"old_uid": names, "new_uid": names, "failovers": ints},
    SliceDiscontinuityDetected: {
        "stream_uid": names,
        "track_type": names,
        "gap_ms": ints,
        "discontinue_utc_ms": ints,
        "start_utc_ms": ints,
    },
    StreamStateChanged: {
        "stream_uid": names,
        "media": st.sampled_from(["audio", "video"]),
        "receiving": st.booleans(),
        "changed_at_ms": ints,
    },
    FilesUploaded: {
        "files": st.lists(file_infos, max_size=3).map(tuple),
        "all_uploaded": st.booleans(),
        "via_backup": st.booleans(),
    },
    UploadProgressed: {"progress": ints},
    RecordingErrored: {
        "module": ints,
        "error_level": ints,
        "error_code": ints,
        "stat": ints,
        "message": names,
        "fatal": st.booleans(),
    },
    RecordingWarned: {"module": ints, "warn_code": ints},
    RecorderLeft: {"leave_code": ints, "reasons": st.lists(names, max_size=3).map(tuple)},
    VodUploadStarted: {"video_id": names},
    VodUploadTriggered: {},
    UnknownEventReceived: {"event_type": ints, "details": st.dictionaries(names, ints | names, max_size=3)},
    SessionEnded: {"summary": summaries},
}


def _same_model(built: BaseModel, validated: BaseModel) -> None:
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)
    assert orjson.loads(built.model_dump_json()) == orjson.loads(validated.model_dump_json())


@pytest.mark.parametrize("cls", list(OWN_FIELDS), ids=lambda cls: cls.kind_name())
@given(data=st.data(), origin=origins)
def test_an_event_built_by_its_typed_constructor_is_the_validated_one(cls, data, origin):
    own = data.draw(st.fixed_dictionaries(OWN_FIELDS[cls]))
    built = cls.of(origin, **own)
    validated = cls(
        schema_version=1,
        event_id=event_id(origin.sid, origin.uid, origin.sequence, cls.kind_name()),
        sid=origin.sid,
        cname=origin.cname,
        uid=origin.uid,
        sequence=origin.sequence,
        at_ms=origin.at_ms,
        late=origin.late,
        kind=cls.kind_name(),
        **own,
    )
    _same_model(built, validated)
    assert DERIVED_EVENT_ADAPTER.validate_json(built.model_dump_json()) == built


@given(info=file_infos)
def test_a_file_info_built_by_its_typed_constructor_is_the_validated_one(info):
    validated = UploadedFileInfo(**info.model_dump())
    _same_model(info, validated)
    assert info.model_dump_json() == validated.model_dump_json()  # same order too


@given(summary=summaries)
def test_a_session_summary_built_by_its_typed_constructor_is_the_validated_one(summary):
    validated = SessionSummary(**summary.model_dump())
    _same_model(summary, validated)
    assert summary.model_dump_json() == validated.model_dump_json()  # same order too


def test_every_kind_a_delivery_derives_has_a_typed_constructor():
    union = typing.get_args(typing.get_args(AnyDerivedEvent)[0])
    # A gap is derived from a hole (`SequenceGapDetected.of`), an expiry from the clock (`fold.retire`).
    assert set(OWN_FIELDS) == set(union) - {SequenceGapDetected, SessionExpired}


ORIGIN = Origin(sid="sid-1", cname="room", uid="1001", sequence=7, at_ms=1_700_000_007_000, late=False)


def test_an_events_json_keeps_the_key_order_the_derived_topic_has_always_carried():
    """Defaults first, then the event's own fields, then at_ms, sid and event_id: byte for byte as before `of`."""
    event = StatusChanged.of(ORIGIN, from_status=3, to_status=4, to_status_name="recorder_started", cause="40 x")
    assert event.model_dump_json() == (
        '{"schema_version":1,"cname":"room","uid":"1001","sequence":7,"late":false,"kind":"status_changed",'
        '"from_status":3,"to_status":4,"to_status_name":"recorder_started","cause":"40 x","at_ms":1700000007000,'
        '"sid":"sid-1","event_id":"sid-1:1001:7:status_changed"}'
    )
    info = UploadedFileInfo.of(
        file_name="a.m3u8", track_type=None, uid=None, mixed_all_user=None, is_playable=None, slice_start_time=None
    )
    files = FilesUploaded.of(ORIGIN, files=(info,), all_uploaded=False, via_backup=False)
    assert files.model_dump_json() == (
        '{"schema_version":1,"cname":"room","uid":"1001","sequence":7,"late":false,"kind":"files_uploaded",'
        '"files":[{"file_name":"a.m3u8","track_type":null,"uid":null,"mixed_all_user":null,"is_playable":null,'
        '"slice_start_time":null}],"all_uploaded":false,"via_backup":false,"at_ms":1700000007000,"sid":"sid-1",'
        '"event_id":"sid-1:1001:7:files_uploaded"}'
    )


def test_a_gap_event_is_named_after_its_span_and_validated():
    gap = SequenceGapDetected.of(
        sid="sid-1", cname="room", uid="1001", at_ms=5, missing_from=3, missing_to=5, reason="timeout"
    )
    assert (gap.event_id, gap.missing_count, gap.sequence) == ("sid-1:1001:3-5:sequence_gap", 3, None)
    assert gap.model_fields_set == set(SequenceGapDetected.model_fields) - {
        "schema_version",
        "kind",
        "sequence",
        "late",
    }
