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
    ],
)
def test_a_body_that_cannot_be_keyed_is_rejected_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidCallback, match=reason):
        inspect(body)
