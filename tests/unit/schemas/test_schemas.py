"""schemas.decode: lenient where the meaning is clear, an explained Rejection otherwise, never an exception."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.callbacks import (
    EVENT_TYPES,
    CloudRecordingFileInfos,
    Envelope,
    RecorderAudioStreamStateChanged,
    RecorderSliceStart,
    RecorderStarted,
    SessionFailover,
    UnknownEvent,
    Uploaded,
    UploadedFile,
)
from schemas.decode import FieldProblem, OtherProduct, Rejection, decode, decode_object


def body(event_type: Any = 40, details: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
    """Return a well-formed NCS body; `payload` overrides payload fields."""
    return {
        "noticeId": "2000001428:4330:107",
        "productId": 3,
        "eventType": event_type,
        "notifyMs": 1_700_000_000_100,
        "payload": {
            "cname": "room",
            "uid": "527841",
            "sid": "sid-1",
            "sequence": 3,
            "sendts": 1_700_000_000_000,
            "serviceType": 1,
            "details": {"msgName": "recorder_started", "status": 0} if details is None else details,
            **payload,
        },
    }


SLICE = {"startUtcMs": 1_700_000_003_000, "discontinueUtcMs": 1_700_000_003_000}


def decoded(raw: dict[str, Any]) -> Any:
    result = decode(orjson.dumps(raw))
    assert isinstance(result, Envelope), result
    return result


def rejected(raw: bytes | dict[str, Any]) -> Rejection:
    result = decode(raw if isinstance(raw, bytes) else orjson.dumps(raw))
    assert isinstance(result, Rejection), result
    return result


LENIENT = [
    ("uid number -> str", body(uid=527841), RecorderStarted, "payload.uid", "527841"),
    ("sid number -> str", body(sid=42), RecorderStarted, "payload.sid", "42"),
    ("sequence '7' -> 7", body(sequence="7"), RecorderStarted, "payload.sequence", 7),
    ("sequence 7.0 -> 7", body(sequence=7.0), RecorderStarted, "payload.sequence", 7),
    (
        "sendts '1700000000000' -> int",
        body(sendts="1700000000000"),
        RecorderStarted,
        "payload.sendts",
        1_700_000_000_000,
    ),
    ("eventType '42' -> 42", body("42", SLICE), RecorderSliceStart, "eventType", 42),
    ("eventType 42.0 -> 42", body(42.0, SLICE), RecorderSliceStart, "eventType", 42),
    (
        "streamUid number -> str",
        body(42, {**SLICE, "streamUid": 57297}),
        RecorderSliceStart,
        "payload.details.streamUid",
        "57297",
    ),
    (
        "mixedAllUser 'true' -> True",
        body(42, {**SLICE, "mixedAllUser": "true"}),
        RecorderSliceStart,
        "payload.details.mixedAllUser",
        True,
    ),
    (
        "mixedAllUser 'false' -> False",
        body(42, {**SLICE, "mixedAllUser": "false"}),
        RecorderSliceStart,
        "payload.details.mixedAllUser",
        False,
    ),
    (
        "startUtcMs string -> int",
        body(42, {**SLICE, "startUtcMs": "1700000003000"}),
        RecorderSliceStart,
        "payload.details.startUtcMs",
        1_700_000_003_000,
    ),
    ("newUid '123' -> 123", body(12, {"newUid": "123"}), SessionFailover, "payload.details.newUid", 123),
    (
        "utcMs accepted for UtcMs",
        body(43, {"streamUid": "7", "state": 0, "utcMs": 5}),
        RecorderAudioStreamStateChanged,
        "payload.details.UtcMs",
        5,
    ),
    (
        "UtcMs as documented",
        body(43, {"streamUid": "7", "state": 0, "UtcMs": 6}),
        RecorderAudioStreamStateChanged,
        "payload.details.UtcMs",
        6,
    ),
    (
        "state '1' -> 1",
        body(43, {"streamUid": "7", "state": "1"}),
        RecorderAudioStreamStateChanged,
        "payload.details.state",
        1,
    ),
    (
        "notificationId for noticeId",
        {**body(), "notificationId": "legacy-1"},
        RecorderStarted,
        "noticeId",
        "2000001428:4330:107",
    ),
    (
        "no productId is recording",
        {k: v for k, v in body().items() if k != "productId"},
        RecorderStarted,
        "productId",
        3,
    ),
    ("productId '3' -> 3", {**body(), "productId": "3"}, RecorderStarted, "productId", 3),
]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("raw", "cls", "path", "value"), [case[1:] for case in LENIENT], ids=[c[0] for c in LENIENT])
def test_numbers_and_strings_are_accepted_for_each_other_when_unambiguous(
    raw: dict[str, Any], cls: type[Envelope], path: str, value: Any
) -> None:
    callback = decoded(raw)
    assert type(callback) is cls
    assert _get(callback, path) == value
    assert type(_get(callback, path)) is type(value)


def test_legacy_names_are_read_when_the_new_ones_are_absent() -> None:
    raw = {k: v for k, v in body().items() if k not in ("noticeId", "notifyMs", "productId")}
    callback = decoded({**raw, "notificationId": "legacy-1", "eventMs": 1_600_000_000_000})
    assert (callback.noticeId, callback.notifyMs, callback.productId) == ("legacy-1", 1_600_000_000_000, 3)


FILE_LISTS = [
    ("string", 4, "a.m3u8", ("a.m3u8",)),
    ("empty string", 4, "", ()),
    ("null", 4, None, ()),
    ("array", 31, [{"fileName": "a.m3u8", "trackType": "audio", "uid": 7}, {"fileName": "a.mp4"}], ("a.m3u8", "a.mp4")),
    ("array where a string is documented", 4, [{"fileName": "a.m3u8"}], ("a.m3u8",)),
    ("string where an array is documented", 31, "a.m3u8", ("a.m3u8",)),
]


@pytest.mark.parametrize(
    ("event_type", "file_list", "names"), [c[1:] for c in FILE_LISTS], ids=[c[0] for c in FILE_LISTS]
)
def test_file_list_always_becomes_a_tuple_of_uploaded_files(
    event_type: int, file_list: Any, names: tuple[str, ...]
) -> None:
    details = decoded(body(event_type, {"status": 0, "fileList": file_list})).payload.details
    assert type(details.fileList) is tuple
    assert all(type(file) is UploadedFile for file in details.fileList)
    assert tuple(file.fileName for file in details.fileList) == names


def test_file_list_entry_uid_numbers_become_strings() -> None:
    details = decoded(body(31, {"fileList": [{"fileName": "a.m3u8", "uid": 7, "isPlayable": "true"}]})).payload.details
    assert details.fileList[0] == UploadedFile(fileName="a.m3u8", uid="7", isPlayable=True)


def test_unknown_extra_fields_are_kept_on_envelope_payload_details_and_files() -> None:
    raw = body(31, {"msgName": "uploaded", "status": 0, "fileList": [{"fileName": "a.m3u8", "size": 9}], "region": 2})
    raw.update(sid="sid-1", serviceScene="mix_record")
    raw["payload"]["noticeLevel"] = "info"
    callback = decoded(raw)
    assert isinstance(callback, Uploaded)
    assert callback.model_extra == {"sid": "sid-1", "serviceScene": "mix_record"}
    assert callback.payload.model_extra == {"noticeLevel": "info"}
    assert callback.payload.details.model_extra == {"msgName": "uploaded", "region": 2}
    assert callback.payload.details.fileList[0].model_extra == {"size": 9}
    # Kept means passed through: dumping gives the extras back.
    assert callback.model_dump()["serviceScene"] == "mix_record"


@pytest.mark.parametrize("event_type", [13, 45, 70, 90, 100, 1001, 0, -1, 99999])
def test_unknown_event_types_decode_to_unknown_event_keeping_type_and_details(event_type: int) -> None:
    details = {"msgName": "something_new", "fileName": "x.jpg", "nested": {"a": [1, 2]}, "flag": None}
    callback = decoded(body(event_type, details))
    assert isinstance(callback, UnknownEvent)
    assert callback.eventType == event_type
    assert callback.payload.details.model_dump() == details


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_msg_name_never_chooses_the_class(event_type: int) -> None:
    minimal = {1: {"module": 0, "errorLevel": 1, "errorCode": 1}, 2: {"module": 0, "warnCode": 1}, 3: {"status": 1},
               11: {"exitStatus": 0}, 12: {"newUid": 1}, 33: {"progress": 1}, 41: {"leaveCode": 2}, 42: SLICE,
               43: {"state": 0}, 44: {"state": 0}}.get(event_type, {})  # fmt: skip
    callback = decoded(body(event_type, {**minimal, "msgName": "session_exit"}))
    assert type(callback) is EVENT_TYPES[event_type]


@pytest.mark.parametrize("product_id", [7, "7", 1, 0])
def test_other_products_give_other_product(product_id: Any) -> None:
    # Not even a recording payload: another product's body is never judged by recording schemas.
    assert decode(orjson.dumps({"productId": product_id, "eventType": 1, "payload": {"x": 1}})) == OtherProduct(
        product_id=int(product_id)
    )


def _without(raw: dict[str, Any], *path: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    target = raw
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return raw


REJECTIONS = [
    ("not JSON", b"{not json", "not_json", None),
    ("invalid UTF-8", b"\xff\xfe", "not_json", None),
    ("empty body", b"", "not_json", None),
    ("array", b"[1, 2]", "not_an_object", None),
    ("string", b'"hello"', "not_an_object", None),
    ("null", b"null", "not_an_object", None),
    ("number", b"42", "not_an_object", None),
    ("missing payload", _without(body(), "payload"), "invalid", "payload"),
    ("payload not an object", dict(body(), payload=[1]), "invalid", "payload"),
    ("missing payload.sid", _without(body(), "payload", "sid"), "invalid", "payload.sid"),
    ("empty sid", body(sid=""), "invalid", "payload.sid"),
    ("sid null", body(sid=None), "invalid", "payload.sid"),
    ("missing sequence", _without(body(), "payload", "sequence"), "invalid", "payload.sequence"),
    ("sequence 'abc'", body(sequence="abc"), "invalid", "payload.sequence"),
    ("negative sequence", body(sequence=-1), "invalid", "payload.sequence"),
    ("fractional sequence", body(sequence=1.5), "invalid", "payload.sequence"),
    ("sendts not a number", body(sendts="yesterday"), "invalid", "payload.sendts"),
    ("eventType null", body(None), "invalid", "eventType"),
    ("eventType 'abc'", body("abc"), "invalid", "eventType"),
    ("missing details", _without(body(), "payload", "details"), "invalid", "payload.details"),
    ("details not an object", body(42, "slice"), "invalid", "payload.details"),  # type: ignore[arg-type]
    ("42 without startUtcMs", body(42, {"discontinueUtcMs": 1}), "invalid", "payload.details.startUtcMs"),
    ("newUid not a number", body(12, {"newUid": "12a"}), "invalid", "payload.details.newUid"),
    ("fractional newUid", body(12, {"newUid": 1.5}), "invalid", "payload.details.newUid"),
    ("fractional progress", body(33, {"progress": 12.5}), "invalid", "payload.details.progress"),
    ("exitStatus a word", body(11, {"exitStatus": "normal"}), "invalid", "payload.details.exitStatus"),
    ("leaveCode a list", body(41, {"leaveCode": [2, 4]}), "invalid", "payload.details.leaveCode"),
    ("mixedAllUser 'maybe'", body(42, {**SLICE, "mixedAllUser": "maybe"}), "invalid", "payload.details.mixedAllUser"),
    (
        "fileList entry without fileName",
        body(31, {"fileList": [{"uid": "1"}]}),
        "invalid",
        "payload.details.fileList.0.fileName",
    ),
    ("fileList a number", body(31, {"fileList": 5}), "invalid", "payload.details.fileList"),
]


@pytest.mark.parametrize(("raw", "kind", "field"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_bad_bodies_are_rejected_with_their_kind_and_the_field_at_fault(
    raw: bytes | dict[str, Any], kind: str, field: str | None
) -> None:
    rejection = rejected(raw)
    assert rejection.kind == kind
    assert rejection.reason
    if field is None:
        assert rejection.problems == ()
    else:
        assert field in [problem.field for problem in rejection.problems]
        assert all(isinstance(problem, FieldProblem) and problem.problem for problem in rejection.problems)
        assert f"{field}: " in rejection.reason


def test_a_rejection_lists_every_problem_not_only_the_first() -> None:
    rejection = rejected(body(12, {"newUid": "x"}, sid="", sequence="abc"))
    assert {problem.field for problem in rejection.problems} == {
        "payload.sid",
        "payload.sequence",
        "payload.details.newUid",
    }


def test_decode_accepts_text_as_well_as_bytes() -> None:
    raw = orjson.dumps(body(4, {"fileList": "a.m3u8"}))
    assert decode(raw.decode()) == decode(raw)
    assert isinstance(decode(raw), CloudRecordingFileInfos)


def test_decoded_callbacks_are_frozen() -> None:
    callback = decoded(body())
    with pytest.raises(Exception, match="frozen"):
        callback.eventType = 41


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(["eventType", "productId", "payload", "sid", "sequence", "details", "fileList", "uid"])


@st.composite
def near_callbacks(draw: st.DrawFn) -> Any:
    """Well-formed bodies with one field replaced by an arbitrary JSON value: the hard cases for the decoder."""
    event_type = draw(st.sampled_from([*EVENT_TYPES, 13, 1001]))
    raw = body(event_type, draw(st.dictionaries(KEYS | st.text(max_size=6), JSON, max_size=4)))
    where = draw(st.sampled_from([raw, raw["payload"]]))
    where[draw(KEYS)] = draw(JSON)
    return raw


def _is_outcome(result: object) -> bool:
    return isinstance(result, Envelope | Rejection | OtherProduct)


@settings(max_examples=150, deadline=None)
@given(value=JSON | near_callbacks())
def test_decoding_any_json_value_gives_a_callback_a_rejection_or_another_product(value: Any) -> None:
    assert _is_outcome(decode_object(value))
    # The stdlib writes what orjson cannot (integers beyond 64 bits): the decoder must take it anyway.
    assert _is_outcome(decode(json.dumps(value)))


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=64))
def test_decoding_arbitrary_bytes_never_raises(raw: bytes) -> None:
    assert _is_outcome(decode(raw))
