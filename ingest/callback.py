"""Minimal validation of a callback body: just enough to key it, never a reason to reject unknown fields."""

from __future__ import annotations

import json
from typing import Any, NamedTuple, TypeGuard

import orjson

from schemas.callbacks import CLOUD_RECORDING_PRODUCT_ID
from schemas.decode import MAX_DEPTH, MAX_SAFE_INTEGER, shape, spelled_integer

#: The console's address check sends signed test events with this channel and uid (spec: What real senders
#: do). They must be answered 200 but never reach the raw topic, where they would start a recording.
TEST_CHANNEL = "test_webhook"
TEST_UID = "12121212"


class InvalidCallback(ValueError):
    """The body is not a callback we can key: the message is the reason given back in the 400."""


class Callback(NamedTuple):
    """What the ingest needs from a body: the key, the notification id and whether it is a console test.

    A NamedTuple (as RawRecord and Match): built for every request, and a frozen dataclass builds slower.
    """

    sid: str
    event_type: int
    notice_id: str | None
    is_test: bool


class OtherProduct(NamedTuple):
    """A notice of another NCS product sent to the same address (RTC channel events are productId 1).

    NCS posts the notices of every product a project subscribed to, and many customers configure one URL for all:
    such a notice is no recording callback and has no `payload.sid`. It is answered 200, never published.
    """

    product_id: int
    event_type: int | None


def inspect(raw_body: bytes) -> Callback | OtherProduct:
    """Parse the raw body and check the envelope the raw topic relies on; raise InvalidCallback otherwise."""
    try:
        body = orjson.loads(raw_body)
    except orjson.JSONDecodeError as exc:
        raise InvalidCallback(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidCallback("body is not a JSON object")
    # Nesting past MAX_DEPTH takes more than MAX_DEPTH opening brackets: most bodies need no walk at all.
    if raw_body.count(b"{") + raw_body.count(b"[") > MAX_DEPTH and shape(body).too_deep:
        # The processor would dead-letter it; other readers of the raw topic might choke on it first.
        raise InvalidCallback(f"body is nested deeper than {MAX_DEPTH} levels")
    if not _surely_without_duplicate_keys(raw_body, body):
        _refuse_duplicate_keys(raw_body)
    return key_of(body)


def key_of(body: dict[str, Any]) -> Callback | OtherProduct:
    """Return what keys a parsed body (checked for depth and repeated names), or the other product it is from.

    Raise InvalidCallback when it is neither.
    """
    product_id = _product_id(body)
    if product_id != CLOUD_RECORDING_PRODUCT_ID:
        return OtherProduct(product_id=product_id, event_type=_integer(body.get("eventType")))
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise InvalidCallback("payload is missing or not an object")
    uid = payload.get("uid")
    is_test = payload.get("cname") == TEST_CHANNEL and _is_text_or_int(uid) and str(uid) == TEST_UID
    sid = payload.get("sid")
    if not (isinstance(sid, str) and sid) and not is_test:
        raise InvalidCallback("payload.sid is missing or not a non-empty string")
    event_type = _integer(body.get("eventType"))
    if event_type is None and not is_test:
        raise InvalidCallback(f"eventType is missing or not an integer within ±{MAX_SAFE_INTEGER}")
    return Callback(
        sid=sid if isinstance(sid, str) else "",
        event_type=event_type if event_type is not None else -1,
        notice_id=_notice_id(body),
        is_test=is_test,
    )


def _product_id(body: dict[str, Any]) -> int:
    """Return the body's productId (an integer, however spelled); raise InvalidCallback otherwise.

    Absent, it is Cloud Recording: legacy bodies (before 2019-08) carry none (spec: field drift). A string of
    ASCII digits ("1") is the number it spells, as the processor's decoder reads it: numbers arrive as strings in
    the wild. Anything that is no integer within ±MAX_SAFE_INTEGER (true, null, {}, "one", 1.5) names no product:
    a 400, where the decoder's lax parsing would have read true as 1.
    """
    value = body.get("productId", CLOUD_RECORDING_PRODUCT_ID)
    product_id = spelled_integer(value) if isinstance(value, str) else _integer(value)
    if product_id is None:
        raise InvalidCallback(f"productId is not an integer within ±{MAX_SAFE_INTEGER} (or a string of digits)")
    return product_id


def _surely_without_duplicate_keys(raw_body: bytes, body: dict[str, Any]) -> bool:
    """Return True when the parsed body provably kept every name of the raw one (else look closer).

    Without backslashes, every colon of the raw body is either a member's separator or a character of a string
    that orjson keeps as it is; re-serialised, the body has one colon per member it kept and the same colons in
    its strings. A repeated name loses a member (and its value's strings): the raw body then has more colons.
    """
    if b"\\" in raw_body:  # an escape (\u003a) can hide a colon, or a name can be spelled two ways
        return False
    try:
        return raw_body.count(b":") == orjson.dumps(body).count(b":")
    except orjson.JSONEncodeError:  # e.g. an integer orjson reads but cannot write: the exact check decides
        return False


def _refuse_duplicate_keys(raw_body: bytes) -> None:
    """Raise InvalidCallback if an object repeats a name: parsers disagree on which value wins (RFC 8259 §4).

    orjson keeps the last one, so the record could be keyed by one sid while another reader sees another.
    I-JSON (RFC 7493 §2.3) forbids duplicates; NCS never sends them. Run after the depth check: the standard
    library parser recurses.
    """

    def check(pairs: list[tuple[str, Any]]) -> None:
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            repeated = next(name for name in names if names.count(name) > 1)
            raise InvalidCallback(f"duplicate key {repeated!r} in an object")

    # Numbers are not needed here: skip building them (and int()'s limit on thousands of digits).
    json.loads(raw_body, object_pairs_hook=check, parse_int=_ignore, parse_float=_ignore)


def _ignore(_: str) -> None:
    return None


def _integer(value: object) -> int | None:
    """Return the integer a JSON number stands for (40, or 40.0 as JSON Schema reads it) within the safe range."""
    if type(value) is int:  # the usual case, answered without the calls below (a bool's type is bool)
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if _is_int(value) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return value
    return None


def _is_text_or_int(value: object) -> bool:
    return isinstance(value, str) or _is_int(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _notice_id(body: dict[str, Any]) -> str | None:
    # Legacy bodies (before 2019-08) carry `notificationId` instead of `noticeId` (spec: field drift).
    for name in ("noticeId", "notificationId"):
        value = body.get(name)
        if type(value) is str:  # the usual case, without the checks below
            return value
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None
