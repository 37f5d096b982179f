"""Minimal validation of a callback body: just enough to key it, never a reason to reject unknown fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

#: The console's address check sends signed test events with this channel and uid (spec: What real senders
#: do). They must be answered 200 but never reach the raw topic, where they would start a recording.
TEST_CHANNEL = "test_webhook"
TEST_UID = "12121212"


class InvalidCallback(ValueError):
    """The body is not a callback we can key: the message is the reason given back in the 400."""


@dataclass(frozen=True, slots=True)
class Callback:
    """What the ingest needs from a body: the key, the notification id and whether it is a console test."""

    sid: str
    event_type: int
    notice_id: str | None
    is_test: bool


def inspect(raw_body: bytes) -> Callback:
    """Parse the raw body and check the envelope the raw topic relies on; raise InvalidCallback otherwise."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise InvalidCallback(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidCallback("body is not a JSON object")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise InvalidCallback("payload is missing or not an object")
    is_test = payload.get("cname") == TEST_CHANNEL and str(payload.get("uid")) == TEST_UID
    sid = payload.get("sid")
    if not (isinstance(sid, str) and sid) and not is_test:
        raise InvalidCallback("payload.sid is missing or not a non-empty string")
    event_type = body.get("eventType")
    if not _is_int(event_type) and not is_test:
        raise InvalidCallback("eventType is missing or not an integer")
    return Callback(
        sid=sid if isinstance(sid, str) else "",
        event_type=event_type if _is_int(event_type) else -1,
        notice_id=_notice_id(body),
        is_test=is_test,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _notice_id(body: dict[str, Any]) -> str | None:
    # Legacy bodies (before 2019-08) carry `notificationId` instead of `noticeId` (spec: field drift).
    for name in ("noticeId", "notificationId"):
        value = body.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None
