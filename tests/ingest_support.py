"""Shared helpers of the ingest tests: the in-memory publisher and signed NCS request builders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson

from ingest.publisher import PublishFailed, RawRecord
from ingest.signature import sign

AGORA_SECRET = b"agora-secret-1"
ANYRTC_SECRET = b"anyrtc-secret-1"


class MemoryPublisher:
    """The in-memory twin of KafkaPublisher: records in a list, outages and slow acks on demand."""

    def __init__(self, *, timeout_s: float = 5.0) -> None:
        self.records: list[RawRecord] = []
        self.available = True
        #: While set to an unset Event, publishes wait for it: the test decides when the "broker" acks.
        self.ack_gate: asyncio.Event | None = None
        #: Publishes waiting for their acknowledgement right now.
        self.pending = 0
        self._timeout_s = timeout_s
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def publish(self, record: RawRecord) -> None:
        if not (self._started and self.available):
            raise PublishFailed("destination unavailable")
        if self.ack_gate is not None:
            self.pending += 1
            try:
                await asyncio.wait_for(self.ack_gate.wait(), self._timeout_s)
            except TimeoutError:
                raise PublishFailed(f"no acknowledgement within {self._timeout_s}s") from None
            finally:
                self.pending -= 1
        self.records.append(record)

    async def ready(self) -> bool:
        return self._started and self.available

    async def stop(self) -> None:
        self._started = False


def callback_body(
    *, sid: str = "sid-1", event_type: int = 40, sequence: int = 0, notice_id: str = "n-1", **payload: object
) -> bytes:
    """Return a compact NCS callback body, as NCS sends it (not pretty-printed, key order kept)."""
    body = {
        "noticeId": notice_id,
        "productId": 3,
        "eventType": event_type,
        "notifyMs": 1_700_000_000_000,
        "payload": {"cname": "room", "uid": "527841", "sid": sid, "sequence": sequence, **payload},
    }
    return orjson.dumps(body)


def legacy_body(*, sid: str = "sid-legacy") -> bytes:
    """Return a pre-2019-08 body: `notificationId`, `eventMs`, no productId, a string sequence."""
    return (
        b'{"notificationId": "legacy-7", "eventType": 40, "eventMs": 1560000000000, '
        b'"payload": {"cname": "room", "uid": "527841", "sid": "' + sid.encode() + b'", "sequence": "3"}}'
    )


def rtc_channel_body(
    *, event_type: int = 102, product_id: object = 1, notice_id: str = "1205703979:24226:102", **payload: object
) -> bytes:
    """Return an RTC channel event as NCS posts it (101 created, 102 destroyed): a top-level `sid`, none in the
    payload, a numeric uid, a `noticeId` of the shape `<id>:<id>:<eventType>`."""
    body = {
        "noticeId": notice_id,
        "productId": product_id,
        "eventType": event_type,
        "notifyMs": 1_611_566_412_672,
        "sid": "0A7E1B2C3D4E5F60718293A4B5C6D7E8",
        "payload": {
            "channelName": "room",
            "ts": 1_560_496_834,
            "uid": 12_121_212,
            "clientSeq": 1_625_051_030_746,
            **payload,
        },
    }
    return orjson.dumps(body)


def console_test_body() -> bytes:
    """Return a console address-check event (channel test_webhook, uid 12121212)."""
    return callback_body(sid="test-sid", cname="test_webhook", uid="12121212")


def agora_headers(body: bytes, secret: bytes = AGORA_SECRET, *, v2: bool = True) -> dict[str, str]:
    """Return the headers NCS sends: V2 (SHA256) and the SHA1 one, or only SHA1 like legacy senders."""
    headers = {"Content-Type": "application/json", "Agora-Signature": sign(body, secret, digest="sha1")}
    if v2:
        headers["Agora-Signature-V2"] = sign(body, secret, digest="sha256")
    return headers


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, timeout_s: float, every_s: float = 0.05) -> None:
    """Poll an async predicate until it holds, failing after `timeout_s` (never a fixed sleep)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await predicate():
                return
            await asyncio.sleep(every_s)
