"""Minimal validation of callback bodies: key them, recognise console tests, reject with a reason."""

from __future__ import annotations

import pytest

from ingest.callback import Callback, InvalidCallback, inspect
from tests.ingest_support import callback_body, console_test_body, legacy_body


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
