"""Minimal validation of callback bodies: key them, recognise console tests, reject with a reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.callback import (
    Callback,
    InvalidCallback,
    OtherProduct,
    _refuse_duplicate_keys,
    _surely_without_duplicate_keys,
    inspect,
    key_of,
)
from schemas import decode
from schemas.decode import MAX_DEPTH, shape
from tests.ingest_support import callback_body, console_test_body, legacy_body, rtc_channel_body


def test_a_documented_callback_is_keyed_by_its_sid() -> None:
    assert inspect(callback_body(sid="abc", event_type=42, notice_id="n-9")) == Callback(
        sid="abc", event_type=42, notice_id="n-9", is_test=False
    )


def test_a_legacy_body_passes_with_its_notification_id() -> None:
    callback = inspect(legacy_body(sid="old"))
    assert (callback.sid, callback.notice_id, callback.is_test) == ("old", "legacy-7", False)


def test_unknown_fields_and_event_types_are_kept_out_of_validation() -> None:
    body = b'{"eventType": 1001, "serviceScene": "mix_record", "sid": "x", "payload": {"sid": "x", "new": []}}'
    assert inspect(body).event_type == 1001


def test_a_console_test_event_is_recognised() -> None:
    assert inspect(console_test_body()).is_test


def test_a_console_test_event_without_sid_is_still_recognised() -> None:
    assert inspect(b'{"payload": {"cname": "test_webhook", "uid": 12121212}}').is_test


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"eventType": 40}', "payload"),
        (b'{"eventType": 40, "payload": []}', "payload"),
        (b'{"eventType": 40, "payload": {}}', "payload.sid"),
        (b'{"eventType": 40, "payload": {"sid": ""}}', "payload.sid"),
        (b'{"eventType": 40, "payload": {"sid": 7}}', "payload.sid"),
        (b'{"payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": "40", "payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": true, "payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": 40.5, "payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": 18446744073709551616, "payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": 9007199254740992, "payload": {"sid": "x"}}', "eventType"),
        (b'{"eventType": 1e400, "payload": {"sid": "x"}}', "not JSON"),
        (b'{"eventType": 40, "payload": {"sid": "\xed\xa0\x80"}}', "not JSON"),  # a UTF-8 encoded surrogate
        (b'{"eventType": 40, "payload": {"sid": "x"}, "x": NaN}', "not JSON"),
        (b'{"eventType": 40, "payload": {"sid": "a", "sid": "b"}}', "duplicate key 'sid'"),
        (b'{"eventType": 40, "eventType": 41, "payload": {"sid": "x"}}', "duplicate key 'eventType'"),
        (b'{"eventType": 40, "payload": {"sid": "x", "d": [{"k": 1, "k": 1}]}}', "duplicate key 'k'"),
        (b'{"eventType": 40, "payload": {"sid": "x", "d": ' + b"[" * 40 + b"]" * 40 + b"}}", "nested deeper"),
    ],
)
def test_a_body_that_cannot_be_keyed_is_rejected_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidCallback, match=reason):
        inspect(body)


def test_the_same_key_in_different_objects_is_no_duplicate() -> None:
    body = b'{"eventType": 40, "sid": "x", "payload": {"sid": "x", "details": {"sid": "x"}}}'
    assert inspect(body).sid == "x"


def test_a_console_test_channel_with_a_deeply_nested_uid_is_refused_not_a_server_error() -> None:
    # The uid was once turned into text before any depth check: 1000 levels overflowed Python's recursion.
    body = b'{"payload": {"cname": "test_webhook", "uid": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    with pytest.raises(InvalidCallback, match="nested deeper"):
        inspect(body)


def test_a_console_test_channel_with_a_uid_of_another_type_is_no_test_event() -> None:
    with pytest.raises(InvalidCallback, match=r"payload\.sid"):
        inspect(b'{"eventType": 40, "payload": {"cname": "test_webhook", "uid": ["12121212"]}}')


def test_an_event_type_written_with_a_zero_fraction_is_an_integer_as_json_schema_says() -> None:
    # The OpenAPI document types eventType as "integer", which 40.0 satisfies; the decoder reads it as 40 too.
    assert inspect(b'{"eventType": 40.0, "payload": {"sid": "x"}}').event_type == 40


# --- other products' notices: recognised by productId, never keyed --------------------------------------------


@pytest.mark.parametrize("event_type", [101, 102, 103, 104])
def test_an_rtc_channel_event_is_another_products_notice(event_type: int) -> None:
    # A top-level sid, no payload.sid, a numeric uid: no recording callback, and no reason to refuse it.
    body = rtc_channel_body(event_type=event_type, notice_id=f"1205703979:24226:{event_type}")
    assert inspect(body) == OtherProduct(product_id=1, event_type=event_type)


def test_an_rtc_console_check_is_another_products_notice_not_a_recording_test_event() -> None:
    assert inspect(rtc_channel_body(event_type=101, channelName="test_webhook")) == OtherProduct(1, 101)


@pytest.mark.parametrize(
    ("product_id", "expected"), [("1", 1), (" 20 ", 20), ("0017", 17), (1.0, 1), (0, 0), (-1, -1), (17, 17)]
)
def test_a_product_id_is_read_as_the_decoder_reads_it(product_id: object, expected: int) -> None:
    assert inspect(rtc_channel_body(product_id=product_id)) == OtherProduct(expected, 102)


def test_another_products_notice_needs_no_event_type_nor_payload() -> None:
    assert inspect(b'{"productId": 7}') == OtherProduct(product_id=7, event_type=None)


@pytest.mark.parametrize("product_id", [3, "3", " 03 ", 3.0])
def test_a_recording_callback_may_spell_its_product_id_as_it_likes(product_id: object) -> None:
    body = orjson.dumps({"productId": product_id, "eventType": 40, "payload": {"sid": "s"}})
    assert inspect(body) == Callback(sid="s", event_type=40, notice_id=None, is_test=False)


@pytest.mark.parametrize(
    "body",
    [
        b'{"productId": 3, "eventType": 40, "payload": {"cname": "room", "uid": "1"}}',
        b'{"productId": "3", "eventType": 40, "sid": "top-level-only", "payload": {"uid": 1}}',
        b'{"eventType": 40, "sid": "top-level-only", "payload": {"uid": 1}}',
    ],
)
def test_a_recording_callback_without_payload_sid_is_still_refused(body: bytes) -> None:
    with pytest.raises(InvalidCallback, match=r"payload\.sid"):
        inspect(body)


@pytest.mark.parametrize(
    "product_id",
    [True, False, None, {}, [], [1], "one", "", "-1", "+1", "1.0", "1e3", "\u0661", 1.5, 2**53, "1" * 17],
)
def test_a_product_id_that_is_no_integer_is_refused(product_id: object) -> None:
    with pytest.raises(InvalidCallback, match="productId is not an integer"):
        inspect(orjson.dumps({"productId": product_id, "eventType": 40, "payload": {"sid": "s"}}))


@pytest.mark.parametrize("product_id", [1, "1", " 7 ", 1.0, 20, "9999999999999999", 3, "3", "003", 3.0, -4, 0])
def test_the_ingest_and_the_processor_agree_on_which_bodies_are_another_products(product_id: object) -> None:
    # A complete recorder_started (40): whether the decoder sees another product does not hang on a missing field.
    extra = {"sendts": 1_700_000_000_000, "serviceType": 1, "details": {"msgName": "recorder_started", "status": 0}}
    body = orjson.dumps({**orjson.loads(callback_body(event_type=40, **extra)), "productId": product_id})
    assert isinstance(inspect(body), OtherProduct) == isinstance(decode.decode(body), decode.OtherProduct)


# --- the shortcuts of inspect() decide as the full checks do ---------------------------------------------------

_KEYS = st.sampled_from(["sid", "eventType", "payload", "a", "a:b", "é", "{", "[x]", "k\\"])
_TEXT = st.text(alphabet=st.sampled_from([*'ab:{}[]",\\é\n ', "\u2028", "\U0001f600"]), max_size=8)


def _string(text: str, style: int) -> str:
    if style == 0:
        return orjson.dumps(text).decode()
    if style == 1:
        return json.dumps(text)  # non-ASCII as \\u escapes
    return json.dumps(text).replace(":", "\\u003a").replace("{", "\\u007b")  # escapes where none are needed


def _json_texts(depth: int) -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["1.5", "40.0", "1e3", "true", "false", "null", "-0"]),
        st.tuples(_TEXT, st.integers(0, 2)).map(lambda t: _string(*t)),
    )
    if depth == 0:
        return scalar
    inner = _json_texts(depth - 1)
    return st.one_of(scalar, _json_objects(depth), st.lists(inner, max_size=3).map(lambda vs: "[" + ",".join(vs) + "]"))


def _json_objects(depth: int) -> st.SearchStrategy[str]:
    space = st.sampled_from(["", " ", "\n  "])
    member = st.tuples(_KEYS, st.integers(0, 2), space, _json_texts(depth - 1))
    text = member.map(lambda m: f"{_string(m[0], m[1])}:{m[2]}{m[3]}")
    return st.lists(text, max_size=4).map(lambda ms: "{" + ",".join(ms) + "}")


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Bodies near the line: repeated names, escaped colons, brackets in strings, nesting around 32 levels."""
    sid = draw(st.sampled_from(['"x"', '"a:b"', "7", '""']))
    extra = draw(st.lists(st.tuples(_KEYS, _json_texts(2)), max_size=4))
    nesting = draw(st.sampled_from([0, 0, 1, 30, 31, 32, 33]))
    deep = "[" * nesting + "1" + "]" * nesting
    members = [f'"eventType":{draw(st.sampled_from(["40", "40.0", "9007199254740992", "true"]))}']
    members += [f'"payload":{{"sid":{sid},"deep":{deep}}}']
    members += [f"{_string(key, 0)}:{value}" for key, value in extra]
    order = draw(st.permutations(members))
    return ("{" + ",".join(order) + "}").encode()


def _reference_inspect(raw_body: bytes) -> Callback:
    """inspect() before its shortcuts: the depth walk and the standard library's duplicate check, always."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise InvalidCallback(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidCallback("body is not a JSON object")
    if shape(body).too_deep:
        raise InvalidCallback(f"body is nested deeper than {MAX_DEPTH} levels")
    _refuse_duplicate_keys(raw_body)
    return key_of(body)


def _outcome(check: Callable[[bytes], Callback], body: bytes) -> object:
    try:
        return check(body)
    except InvalidCallback as exc:
        return str(exc)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies())
def test_inspect_with_its_shortcuts_decides_as_the_full_depth_and_duplicate_checks(body: bytes) -> None:
    assert _outcome(inspect, body) == _outcome(_reference_inspect, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=_json_objects(3))
def test_the_colon_count_never_vouches_for_a_body_with_a_repeated_name(text: str) -> None:
    raw = text.encode()
    if _surely_without_duplicate_keys(raw, orjson.loads(raw)):
        _refuse_duplicate_keys(raw)  # raises on a repeated name


def test_a_repeated_name_hidden_by_an_escaped_colon_is_still_refused() -> None:
    # Without the backslash rule, the raw and re-serialised colon counts would be equal here.
    with pytest.raises(InvalidCallback, match="duplicate key 'a'"):
        inspect(b'{"eventType": 40, "payload": {"sid": "x"}, "a": 1, "a": "\\u003a"}')


def test_a_body_with_colons_in_its_strings_and_no_repeated_name_is_accepted() -> None:
    body = b'{"eventType": 40, "payload": {"sid": "a:b", "url": "https://x:443/"}, "t": "12:00"}'
    assert inspect(body).sid == "a:b"


def test_brackets_inside_strings_do_not_make_a_body_too_deep() -> None:
    body = b'{"eventType": 40, "payload": {"sid": "x", "s": "' + b"[{" * 40 + b'"}}'
    assert inspect(body).sid == "x"
