"""Small builders of NCS callbacks for the core's tests."""

from __future__ import annotations

from typing import Any

from schemas.callbacks import Callback
from schemas.decode import decode_object

SID = "sid-1"
UID = "1001"
T0 = 1_700_000_000_000


def body(
    event_type: int,
    sequence: int,
    details: dict[str, Any] | None = None,
    *,
    uid: str = UID,
    sid: str = SID,
    sendts: int | None = None,
    notify_ms: int | None = None,
) -> dict[str, Any]:
    """Return one NCS body; times default to one second per sequence number after T0."""
    at = T0 + 1_000 * sequence if sendts is None else sendts
    return {
        "noticeId": f"n-{uid}-{sequence}",
        "productId": 3,
        "eventType": event_type,
        "notifyMs": at if notify_ms is None else notify_ms,
        "payload": {
            "cname": "room",
            "uid": uid,
            "sid": sid,
            "sequence": sequence,
            "sendts": at,
            "serviceType": 0,
            "details": details or {},
        },
    }


def callback(event_type: int, sequence: int, details: dict[str, Any] | None = None, **kwargs: Any) -> Callback:
    """Return one decoded callback (see `body`)."""
    decoded = decode_object(body(event_type, sequence, details, **kwargs))
    assert not hasattr(decoded, "reason"), decoded
    return decoded  # type: ignore[return-value]


def progress(sequence: int, value: int = 5_000, **kwargs: Any) -> Callback:
    """An uploading_progress callback (33): the most common, and harmless to the status."""
    return callback(33, sequence, {"progress": value}, **kwargs)
