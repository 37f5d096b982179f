"""Hostile HTTP against a live ingest on the real broker: every attack gets a clear 4xx or a closed connection in
bounded time, normal callbacks keep getting 200 meanwhile, and nothing refused ever reaches the raw topic."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from devenv.kafka import EmbeddedKafka
from devenv.topics import TopicSpec, ensure_topics
from ingest.signature import sign
from schemas.decode import Rejection, decode
from tests.ingest_support import AGORA_SECRET, agora_headers, callback_body
from tests.integration.ingest_process import LiveIngest, records_on, running_ingest

pytestmark = pytest.mark.kafka

AGORA = "/v1/callbacks/agora"
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
#: Closing takes the timeout, at most a second of discarding what still arrives, and scheduling slack.
CLOSE_BOUND_S = 1.0 + 1.0 + 2.0
#: Sids of the bodies the tests expect on the topic; anything else there was published by mistake.
ACCEPTED = "accepted-"
_numbers = itertools.count()


@pytest.fixture(scope="module")
def live_ingest(kafka: EmbeddedKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIngest]:
    topic = f"hostile-input-{uuid.uuid4().hex}"
    asyncio.run(ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1)]))
    log = tmp_path_factory.mktemp("ingest") / "ingest.log"
    timeouts = {"header_timeout_s": str(HEADER_TIMEOUT_S), "body_timeout_s": str(BODY_TIMEOUT_S)}
    with running_ingest(kafka.bootstrap_servers, topic, log=log, **timeouts) as live:
        yield live
    assert "Traceback" not in log.read_text()  # no unhandled exception behind any answer


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # A fresh connection per request: a keep-alive one would hide how the server treats new connections.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as client:
        yield client


async def post_accepted(session: aiohttp.ClientSession, live: LiveIngest) -> float:
    """POST a normal signed callback; assert its 200 and return how long it took."""
    body = callback_body(sid=f"{ACCEPTED}{next(_numbers)}")
    began = time.monotonic()
    async with session.post(f"{live.base_url}{AGORA}", data=body, headers=agora_headers(body)) as response:
        assert (response.status, await response.read()) == (200, b"{}")
    return time.monotonic() - began


async def assert_nothing_refused_was_published(live: LiveIngest) -> None:
    records = await records_on(live.bootstrap_servers, live.topic)
    strays = [record.value[:80] for record in records if not record.key.startswith(ACCEPTED.encode())]
    assert strays == []


async def exchange(live: LiveIngest, data: bytes, *, timeout_s: float = CLOSE_BOUND_S) -> bytes:
    """Send raw bytes on a new connection; return what the server sends until it closes (bounded in time)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def status_of(answer: bytes) -> int | None:
    """Return the status of a raw HTTP answer, or None when the connection closed without one."""
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def signed(body: bytes) -> dict[str, str]:
    return {"Agora-Signature-V2": sign(body, AGORA_SECRET), "Connection": "close"}


def deep(levels: int, *, opening: bytes = b"[", closing: bytes = b"]") -> bytes:
    return opening * levels + b"1" + closing * levels


def in_payload(fragment: bytes, *, sid: bytes = b'"hostile"') -> bytes:
    return b'{"eventType": 40, "payload": {"sid": ' + sid + b', "x": ' + fragment + b"}}"


# --- hostile bodies, correctly signed: refused by what the ingest checks, never by a crash ------------------------

HOSTILE_BODIES = {
    "100k nested arrays": in_payload(deep(100_000)),
    "1000 nested objects": in_payload(deep(1000, opening=b'{"a": ', closing=b"}")),
    "40 nested arrays": in_payload(deep(40)),
    "console check with a 1000-deep uid": b'{"payload": {"cname": "test_webhook", "uid": ' + deep(1000) + b"}}",
    "eventType of 30 digits": b'{"eventType": 123456789012345678901234567890, "payload": {"sid": "hostile"}}',
    "eventType of 5000 digits": b'{"eventType": ' + b"9" * 5000 + b', "payload": {"sid": "hostile"}}',
    "eventType 1e400": b'{"eventType": 1e400, "payload": {"sid": "hostile"}}',
    "eventType 2**53": b'{"eventType": 9007199254740992, "payload": {"sid": "hostile"}}',
    "eventType NaN": b'{"eventType": NaN, "payload": {"sid": "hostile"}}',
    "invalid UTF-8": b'{"eventType": 40, "payload": {"sid": "host\xffile"}}',
    "UTF-8 encoded surrogate": b'{"eventType": 40, "payload": {"sid": "\xed\xa0\x80"}}',
    "escaped lone surrogate": b'{"eventType": 40, "payload": {"sid": "\\ud800"}}',
    "byte order mark": b'\xef\xbb\xbf{"eventType": 40, "payload": {"sid": "hostile"}}',
    "duplicate sid": b'{"eventType": 40, "payload": {"sid": "accepted-dup", "sid": "hostile"}}',
    "duplicate eventType": b'{"eventType": 40, "eventType": 41, "payload": {"sid": "hostile"}}',
    "duplicate payload": b'{"eventType": 40, "payload": {"sid": "a"}, "payload": {"sid": "hostile"}}',
    "an array": b'[{"eventType": 40, "payload": {"sid": "hostile"}}]',
    "a string": b'"hostile"',
    "null": b"null",
    "a number": b"40",
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "trailing garbage": b'{"eventType": 40, "payload": {"sid": "hostile"}} trailing',
    "two documents": b'{"eventType": 40, "payload": {"sid": "hostile"}}{"eventType": 40}',
    "empty sid": b'{"eventType": 40, "payload": {"sid": ""}}',
    "numeric sid": b'{"eventType": 40, "payload": {"sid": 7}}',
    "payload a list": b'{"eventType": 40, "payload": [{"sid": "hostile"}]}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
async def test_a_signed_hostile_body_is_a_400_with_its_reason_and_never_published(
    live_ingest: LiveIngest, session: aiohttp.ClientSession, body: bytes
) -> None:
    async with session.post(f"{live_ingest.base_url}{AGORA}", data=body, headers=signed(body)) as response:
        assert response.status == 400
        assert (await response.json())["error"]
    await assert_nothing_refused_was_published(live_ingest)


async def test_a_huge_number_where_the_ingest_does_not_look_is_published_for_the_processor_to_dead_letter(
    live_ingest: LiveIngest, session: aiohttp.ClientSession
) -> None:
    # The ingest keys and dispatches; judging every field is the decoder's job, which keeps the evidence (DLQ).
    body = b'{"eventType": 40, "payload": {"sid": "accepted-huge", "sequence": 18446744073709551615}}'
    async with session.post(f"{live_ingest.base_url}{AGORA}", data=body, headers=signed(body)) as response:
        assert response.status == 200
    (record,) = [r for r in await records_on(live_ingest.bootstrap_servers, live_ingest.topic) if r.value == body]
    assert isinstance(decode(record.value), Rejection)


# --- missing and garbage signatures --------------------------------------------------------------------------------

BODY = callback_body(sid="hostile-unsigned")
SIGNATURES = {
    "none": {},
    "empty": {"Agora-Signature-V2": ""},
    "not hex": {"Agora-Signature-V2": "zz" * 32},
    "8000 characters": {"Agora-Signature-V2": "a" * 8000},
    "another secret": {"Agora-Signature-V2": sign(BODY, b"not-the-secret")},
    "another body": {"Agora-Signature-V2": sign(BODY + b" ", AGORA_SECRET)},
    "wrong V2, right SHA1": {
        "Agora-Signature-V2": "0" * 64,
        "Agora-Signature": sign(BODY, AGORA_SECRET, digest="sha1"),
    },
    "anyRTC's header on Agora's path": {"Ar-Signature": sign(BODY, AGORA_SECRET)},
}


@pytest.mark.parametrize("headers", SIGNATURES.values(), ids=SIGNATURES.keys())
async def test_a_missing_or_garbage_signature_is_a_401_and_never_published(
    live_ingest: LiveIngest, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with session.post(f"{live_ingest.base_url}{AGORA}", data=BODY, headers=headers) as response:
        assert response.status == 401
    await assert_nothing_refused_was_published(live_ingest)


def raw_post(headers: bytes, body: bytes = BODY) -> bytes:
    return b"POST " + AGORA.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n" + body


MALFORMED_REQUESTS = {
    "non-ASCII signature bytes": raw_post(b"Agora-Signature-V2: \xff\xfe\x00sig\r\nContent-Length: %d\r\n" % len(BODY)),
    "header without a colon": raw_post(b"Agora-Signature-V2\r\nContent-Length: %d\r\n" % len(BODY)),
    "a 9000-byte header": raw_post(b"X-Big: " + b"a" * 9000 + b"\r\nContent-Length: %d\r\n" % len(BODY)),
    "200 headers": raw_post(b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"Content-Length: %d\r\n" % len(BODY)),
    "a letter for a length": raw_post(b"Content-Length: abc\r\n"),
    "a negative length": raw_post(b"Content-Length: -1\r\n"),
    "two different lengths": raw_post(b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(BODY)),
    "length and chunked (smuggling)": raw_post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "a bad chunk size": raw_post(b"Transfer-Encoding: chunked\r\n", b"zz\r\n" + BODY + b"\r\n0\r\n\r\n"),
    "a garbage request line": b"\x00\x01\x02 garbage\r\n\r\n",
    "an unknown HTTP version": b"POST " + AGORA.encode() + b" HTTP/7.3\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
async def test_malformed_http_gets_a_4xx_or_a_closed_connection_and_nothing_is_published(
    live_ingest: LiveIngest, request_bytes: bytes
) -> None:
    status = status_of(await exchange(live_ingest, request_bytes))
    assert status is None or 400 <= status < 500, status
    await assert_nothing_refused_was_published(live_ingest)


# --- oversized bodies: refused without being read into memory -----------------------------------------------------


async def stream_until_refused(live: LiveIngest, head: bytes, chunk: bytes) -> tuple[bytes, int]:
    """Send the head, then `chunk` over and over until the server answers and closes; return (answer, sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    sent = 0

    async def flood() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            while True:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)

    flooding = asyncio.create_task(flood())
    try:
        answer = await asyncio.wait_for(reader.read(), CLOSE_BOUND_S)
    except ConnectionError:
        answer = b""  # reset while we were still sending: the connection is closed, which is acceptable
    finally:
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flooding
        writer.close()
    return answer, sent


@pytest.mark.parametrize(
    ("head", "chunk"),
    [
        (raw_post(b"Content-Length: 1000000000\r\n" + b"Agora-Signature-V2: %s\r\n" % (b"0" * 64), b""), b"x" * 65536),
        (raw_post(b"Transfer-Encoding: chunked\r\n", b""), b"10000\r\n" + b"x" * 65536 + b"\r\n"),
    ],
    ids=["1 GB announced", "endless chunks"],
)
async def test_an_oversized_body_is_a_413_or_a_closed_connection_without_being_held_in_memory(
    live_ingest: LiveIngest, session: aiohttp.ClientSession, head: bytes, chunk: bytes
) -> None:
    rss_before = live_ingest.rss_bytes()
    began = time.monotonic()
    answer, sent = await stream_until_refused(live_ingest, head, chunk)
    assert status_of(answer) in {413, None}
    assert time.monotonic() - began < CLOSE_BOUND_S
    assert sent > 256 * 1024  # the client did send more than the limit...
    assert live_ingest.rss_bytes() - rss_before < 32 * 1024 * 1024  # ...and the server kept none of it
    await post_accepted(session, live_ingest)
    await assert_nothing_refused_was_published(live_ingest)


# --- slow clients: bounded, and never in the way of the others ----------------------------------------------------


async def slow_client(live: LiveIngest, data: bytes, *, every_s: float) -> tuple[bytes, float]:
    """Send `data` one byte every `every_s`; return what came back and how long the connection lived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    began = time.monotonic()
    answer = b""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(reader.read(4096), every_s)
            if answer or reader.at_eof():
                break
        answer += await asyncio.wait_for(reader.read(), CLOSE_BOUND_S)  # the rest, until the server closes
    except ConnectionError:
        pass  # reset while we were still sending: closed, which is what we wait for
    finally:
        writer.close()
    return answer, time.monotonic() - began


async def callbacks_meanwhile(
    live: LiveIngest, session: aiohttp.ClientSession, until: asyncio.Future[Any]
) -> list[float]:
    """POST normal callbacks one after another until `until` is done; return their latencies."""
    latencies = []
    while not until.done():
        latencies.append(await post_accepted(session, live))
        await asyncio.sleep(0.1)
    return latencies


async def test_slowloris_heads_are_cut_off_while_normal_callbacks_keep_getting_200(
    live_ingest: LiveIngest, session: aiohttp.ClientSession
) -> None:
    head = raw_post(b"Content-Length: %d\r\n" % len(BODY), b"")
    clients = asyncio.gather(*(slow_client(live_ingest, head, every_s=0.1) for _ in range(50)))
    latencies = await callbacks_meanwhile(live_ingest, session, clients)
    for answer, lived_s in await clients:
        assert answer == b""  # there was no request yet to answer: the connection is simply closed
        assert lived_s < HEADER_TIMEOUT_S + CLOSE_BOUND_S
    assert len(latencies) >= 3
    assert max(latencies) < 1.0
    await assert_nothing_refused_was_published(live_ingest)


async def test_a_trickled_body_gets_a_408_and_is_closed_while_normal_callbacks_keep_getting_200(
    live_ingest: LiveIngest, session: aiohttp.ClientSession
) -> None:
    body = orjson.dumps({"eventType": 40, "payload": {"sid": "hostile-trickle", "padding": "x" * 300}})
    request = raw_post(
        b"Content-Length: %d\r\n" % len(body) + b"Agora-Signature-V2: %s\r\n" % sign(body, AGORA_SECRET).encode(), b""
    )
    opened = [asyncio.open_connection("127.0.0.1", live_ingest.port) for _ in range(20)]
    streams = await asyncio.gather(*opened)
    for _, writer in streams:
        writer.write(request)  # the whole head at once: only the body trickles

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[bytes, float]:
        began = time.monotonic()
        answer = b""
        with contextlib.suppress(ConnectionError):
            for byte in body:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    answer += await asyncio.wait_for(reader.read(4096), 0.1)
                if answer:
                    break
            answer += await asyncio.wait_for(reader.read(), CLOSE_BOUND_S)
        writer.close()
        return answer, time.monotonic() - began

    clients = asyncio.gather(*(trickle(reader, writer) for reader, writer in streams))
    latencies = await callbacks_meanwhile(live_ingest, session, clients)
    for answer, lived_s in await clients:
        assert status_of(answer) == 408
        assert b"Connection: close" in answer
        assert lived_s < BODY_TIMEOUT_S + CLOSE_BOUND_S
    assert max(latencies) < 1.0
    await assert_no_handler_is_left_running(live_ingest, session)
    await assert_nothing_refused_was_published(live_ingest)


async def assert_no_handler_is_left_running(live: LiveIngest, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{live.base_url}/metrics") as response:
        text = await response.text()
    (in_flight,) = [line for line in text.splitlines() if line.startswith("ingest_requests_in_flight ")]
    assert float(in_flight.split()[1]) == 0.0  # the gauge counts callbacks being handled
