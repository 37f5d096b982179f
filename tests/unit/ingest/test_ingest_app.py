"""The ingest's HTTP behaviour, through aiohttp's test client with the in-memory publisher."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from ingest.app import init_app
from ingest.keys import INGEST
from ingest.service import ANSWERED_OK, Outcome
from ingest.settings import IngestSettings
from ingest.signature import sign
from tests.ingest_support import (
    AGORA_SECRET,
    ANYRTC_SECRET,
    MemoryPublisher,
    agora_headers,
    callback_body,
    console_test_body,
    legacy_body,
    rtc_channel_body,
    wait_until,
)

AGORA = "/v1/callbacks/agora"
ANYRTC = "/v1/callbacks/anyrtc"
RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "recording.rules.yml"
NON_2XX_RATIO = "provider:ingest_requests_non_2xx:ratio_rate5m"
Client = TestClient[web.Request, web.Application]


def settings(**overrides: object) -> IngestSettings:
    values: dict[str, object] = {
        "agora_secrets": [AGORA_SECRET.decode(), "rotated-out"],
        "anyrtc_secrets": [ANYRTC_SECRET.decode()],
        "instance_id": "ingest-test",
        "publish_timeout_s": 0.5,
        **overrides,
    }
    return IngestSettings.model_validate(values)


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher(timeout_s=0.5)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_client(
    publisher: MemoryPublisher, registry: CollectorRegistry
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    clients: list[Client] = []

    async def make(**overrides: object) -> Client:
        app = init_app(settings(**overrides), publisher=publisher, registry=registry)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


async def _true(value: bool) -> bool:
    return value


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_signed_callback_is_published_unchanged_and_answered_200_with_an_empty_object(
    client: Client, publisher: MemoryPublisher
) -> None:
    body = callback_body(sid="sid-42", notice_id="n-42")
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert (response.status, await response.read()) == (200, b"{}")
    assert response.content_type == "application/json"
    (record,) = publisher.records
    assert (record.key, record.value) == (b"sid-42", body)
    headers = dict(record.headers)
    assert headers["provider"] == b"agora"
    assert headers["notice-id"] == b"n-42"
    assert headers["signature"] == b"Agora-Signature-V2"
    assert headers["ingest-instance"] == b"ingest-test"
    assert int(headers["received-at-ms"]) > 1_600_000_000_000


async def test_the_answer_waits_for_the_publisher_acknowledgement(client: Client, publisher: MemoryPublisher) -> None:
    publisher.ack_gate = asyncio.Event()
    body = callback_body()
    pending = asyncio.create_task(client.post(AGORA, data=body, headers=agora_headers(body)))
    await wait_until(lambda: _true(publisher.pending == 1), timeout_s=5)
    await asyncio.sleep(0)
    assert not pending.done()
    publisher.ack_gate.set()
    response = await asyncio.wait_for(pending, 5)
    assert response.status == 200
    assert len(publisher.records) == 1


async def test_no_acknowledgement_within_the_timeout_is_a_503_with_retry_after(
    client: Client, publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    publisher.ack_gate = asyncio.Event()
    body = callback_body()
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="unavailable") == 1


async def test_an_unavailable_broker_is_a_503_with_retry_after(client: Client, publisher: MemoryPublisher) -> None:
    publisher.available = False
    body = callback_body()
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert "retry" in (await response.json())["error"]


async def test_a_legacy_callback_signed_with_sha1_only_is_published(client: Client, publisher: MemoryPublisher) -> None:
    body = legacy_body(sid="legacy-sid")
    response = await client.post(AGORA, data=body, headers=agora_headers(body, v2=False))
    assert response.status == 200
    assert publisher.records[0].key == b"legacy-sid"
    assert dict(publisher.records[0].headers)["notice-id"] == b"legacy-7"


async def test_a_secret_being_rotated_in_verifies_too(client: Client, publisher: MemoryPublisher) -> None:
    body = callback_body()
    response = await client.post(AGORA, data=body, headers=agora_headers(body, b"rotated-out"))
    assert response.status == 200


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing"), ({"Agora-Signature-V2": "0" * 64}, "mismatch")],
)
async def test_a_missing_or_wrong_signature_is_a_401_counted_and_never_published(
    client: Client,
    publisher: MemoryPublisher,
    registry: CollectorRegistry,
    headers: dict[str, str],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = callback_body(sid="secret-sid")
    response = await client.post(AGORA, data=body, headers=headers)
    assert response.status == 401
    assert publisher.records == []
    assert sample(registry, "ingest_signature_failures_total", provider="agora", reason=reason) == 1
    assert "secret-sid" not in caplog.text


async def test_a_flood_of_bad_signatures_logs_one_line_per_reason_a_second_and_counts_every_one(
    client: Client, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    body = callback_body(sid="flood")
    for _ in range(20):
        assert (await client.post(AGORA, data=body, headers={"Agora-Signature-V2": "0" * 64})).status == 401
        assert (await client.post(AGORA, data=body)).status == 401
    refused = [record for record in caplog.records if record.getMessage() == "signature refused"]
    # Twenty of each within well under a second: one line per reason (the test would need 19 s to see two).
    assert sorted(getattr(record, "reason", None) for record in refused) == ["mismatch", "missing"]
    assert sample(registry, "ingest_signature_failures_total", provider="agora", reason="mismatch") == 20
    assert sample(registry, "ingest_signature_failures_total", provider="agora", reason="missing") == 20


async def test_agora_secrets_do_not_verify_anyrtc_callbacks(client: Client, publisher: MemoryPublisher) -> None:
    body = callback_body()
    assert (await client.post(ANYRTC, data=body, headers=agora_headers(body))).status == 401
    response = await client.post(ANYRTC, data=body, headers={"Ar-Signature": sign(body, ANYRTC_SECRET)})
    assert response.status == 200
    assert dict(publisher.records[0].headers)["provider"] == b"anyrtc"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'["an", "array"]', "not a JSON object"),
        (b'{"eventType": 40, "payload": {"cname": "room"}}', "payload.sid"),
        (b'{"productId": 3, "eventType": 40, "sid": "top", "payload": {"cname": "room"}}', "payload.sid"),
        (b'{"payload": {"sid": "x"}}', "eventType"),
        (b'{"productId": true, "eventType": 40, "payload": {"sid": "x"}}', "productId"),
        (b'{"productId": {}, "eventType": 102, "sid": "x", "payload": {}}', "productId"),
    ],
)
async def test_a_signed_body_that_is_not_a_keyable_callback_is_a_400_with_the_reason(
    client: Client, publisher: MemoryPublisher, body: bytes, reason: str
) -> None:
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert publisher.records == []


async def test_an_unsigned_bad_body_is_a_401_not_a_400(client: Client) -> None:
    assert (await client.post(AGORA, data=b"{not json")).status == 401


async def test_a_body_over_the_limit_is_a_413_and_not_published(
    make_client: Callable[..., Awaitable[Client]], publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    client = await make_client(max_body_bytes=2048)
    body = callback_body(padding="x" * 4096)
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert response.status == 413
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="too_large") == 1


async def test_a_body_at_the_default_limit_is_accepted(client: Client, publisher: MemoryPublisher) -> None:
    body = callback_body(padding="x" * (256 * 1024 - 400))
    assert len(body) <= 256 * 1024
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert response.status == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_another_method_on_a_callback_path_is_a_405(
    client: Client, registry: CollectorRegistry, method: str
) -> None:
    response = await client.request(method, AGORA, data=b"{}")
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="method_not_allowed") == 1


@pytest.mark.parametrize(("method", "path"), [("GET", AGORA), ("HEAD", AGORA), ("GET", ANYRTC)])
async def test_the_address_check_by_get_or_head_is_answered_200(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status == 200
    if method == "GET":
        assert await response.read() == b"{}"


async def test_a_signed_console_test_event_is_answered_200_but_not_published(
    client: Client, publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    body = console_test_body()
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert (response.status, await response.read()) == (200, b"{}")
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="test_event") == 1


async def test_an_unsigned_console_test_event_is_refused(client: Client) -> None:
    assert (await client.post(AGORA, data=console_test_body())).status == 401


# --- other NCS products posting to the same address ------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "product_id"), [(101, 1), (102, 1), (102, "1"), (1001, 17)])
async def test_another_products_signed_notice_is_answered_200_counted_and_never_published(
    client: Client, publisher: MemoryPublisher, registry: CollectorRegistry, event_type: int, product_id: object
) -> None:
    body = rtc_channel_body(event_type=event_type, product_id=product_id)
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    assert (response.status, await response.read()) == (200, b"{}")
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="other_product") == 1
    assert sample(registry, "ingest_publish_duration_seconds_count", provider="agora") == 0


async def test_another_products_notice_with_a_forged_signature_is_a_401(
    client: Client, publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    body = rtc_channel_body()
    forged = agora_headers(body, b"not-our-secret")
    assert (await client.post(AGORA, data=body, headers=forged)).status == 401
    assert (await client.post(AGORA, data=body)).status == 401
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="bad_signature") == 2
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="other_product") == 0


async def test_another_products_unsigned_notice_passes_only_where_unsigned_is_allowed(
    make_client: Callable[..., Awaitable[Client]], publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    client = await make_client(agora_secrets=[], anyrtc_secrets=[], allow_unsigned=True)
    assert (await client.post(AGORA, data=rtc_channel_body())).status == 200
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="other_product") == 1


async def test_other_products_log_one_line_per_product_a_second_and_count_every_notice(
    client: Client, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1_700_000_000_000]
    client.app[INGEST].clock_ms = lambda: now[0]
    caplog.set_level(logging.INFO, logger="ingest.service")
    # RTC (1) and Conversational AI (17) have a line each; unknown products (5, 6, 2**40) share one.
    products = [1] * 20 + [17] * 3 + [5, 6, 2**40]
    for product_id in products:
        body = rtc_channel_body(product_id=product_id)
        assert (await client.post(AGORA, data=body, headers=agora_headers(body))).status == 200
    now[0] += 999
    body = rtc_channel_body(product_id=1)
    assert (await client.post(AGORA, data=body, headers=agora_headers(body))).status == 200
    now[0] += 1
    assert (await client.post(AGORA, data=body, headers=agora_headers(body))).status == 200

    lines = [record for record in caplog.records if record.getMessage().startswith("other product")]
    seen = [(getattr(r, "product_id", 0), getattr(r, "event_type", 0), getattr(r, "held_back", 0)) for r in lines]
    # A second after the first RTC line, the next one says how many were held back in between (19 + 1).
    assert seen == [(1, 102, 0), (17, 102, 0), (5, 102, 0), (1, 102, 20)]
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="other_product") == len(products) + 2


def test_the_non_2xx_ratio_rule_excludes_exactly_the_outcomes_answered_200() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    (ratio,) = [r for g in groups for r in g["rules"] if r.get("record") == NON_2XX_RATIO]
    excluded = re.search(r'outcome!~"([^"]+)"', ratio["expr"])
    assert excluded is not None
    assert set(excluded.group(1).split("|")) == {outcome.value for outcome in ANSWERED_OK}
    assert set(Outcome) > ANSWERED_OK


async def test_unsigned_callbacks_pass_only_where_explicitly_allowed_without_secrets(
    make_client: Callable[..., Awaitable[Client]], publisher: MemoryPublisher
) -> None:
    client = await make_client(agora_secrets=[], anyrtc_secrets=[], allow_unsigned=True)
    body = callback_body()
    assert (await client.post(AGORA, data=body)).status == 200
    assert dict(publisher.records[0].headers)["signature"] == b"unsigned"


async def test_a_provider_without_secrets_refuses_everything_unless_unsigned_is_allowed(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(anyrtc_secrets=[])
    body = callback_body()
    assert (await client.post(ANYRTC, data=body, headers=agora_headers(body))).status == 401


async def test_an_unknown_provider_is_a_404(client: Client) -> None:
    assert (await client.post("/v1/callbacks/zoom", data=b"{}")).status == 404


async def test_healthz_answers_while_the_process_runs(client: Client, publisher: MemoryPublisher) -> None:
    publisher.available = False
    assert (await client.get("/healthz")).status == 200


async def test_readyz_follows_the_publisher(client: Client, publisher: MemoryPublisher) -> None:
    assert (await client.get("/readyz")).status == 200
    publisher.available = False
    assert (await client.get("/readyz")).status == 503


async def test_metrics_expose_requests_latency_sizes_and_in_flight_without_sids(client: Client) -> None:
    body = callback_body(sid="never-a-label")
    await client.post(AGORA, data=body, headers=agora_headers(body))
    text = await (await client.get("/metrics")).text()
    assert 'ingest_requests_total{outcome="published",provider="agora"} 1.0' in text
    assert 'ingest_publish_duration_seconds_count{provider="agora"} 1.0' in text
    assert 'ingest_request_body_bytes_count{provider="agora"} 1.0' in text
    assert "ingest_requests_in_flight" in text
    assert "ingest_signature_failures_total" in text
    assert "never-a-label" not in text


async def test_the_in_flight_gauge_counts_a_request_waiting_for_its_acknowledgement(
    client: Client, publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    publisher.ack_gate = asyncio.Event()
    body = callback_body()
    pending = asyncio.create_task(client.post(AGORA, data=body, headers=agora_headers(body)))
    await wait_until(lambda: _true(publisher.pending == 1), timeout_s=5)
    assert sample(registry, "ingest_requests_in_flight") == 1
    publisher.ack_gate.set()
    assert (await asyncio.wait_for(pending, 5)).status == 200
    await client.get("/healthz")  # not a callback: not counted
    assert sample(registry, "ingest_requests_in_flight") == 0


# --- slow, oversized and compressed bodies (raw sockets: the client libraries would not send them) -------------


async def raw_exchange(client: Client, head: bytes, body: bytes = b"", *, timeout_s: float = 5) -> bytes:
    """Send a request head and (part of) a body as given; return all the server sends before it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def post_head(length: int, *, path: str = AGORA, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


async def test_a_declared_length_over_the_limit_is_a_413_before_any_of_the_body_is_read(
    make_client: Callable[..., Awaitable[Client]], publisher: MemoryPublisher
) -> None:
    client = await make_client(max_body_bytes=2048)
    # 100 MB announced, none sent: waiting for it would hang until the body timeout.
    answer = await raw_exchange(client, post_head(100_000_000), timeout_s=2)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer
    assert publisher.records == []


async def test_a_body_that_does_not_arrive_in_time_is_a_408_and_the_connection_is_closed(
    make_client: Callable[..., Awaitable[Client]], publisher: MemoryPublisher, registry: CollectorRegistry
) -> None:
    client = await make_client(body_timeout_s=0.3)
    began = asyncio.get_running_loop().time()
    answer = await raw_exchange(client, post_head(500), b'{"eventType": 40, ', timeout_s=5)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error"' in answer
    # Answered at the timeout, closed after at most a second of discarding what still comes.
    assert asyncio.get_running_loop().time() - began < 0.3 + 1.0 + 1.0
    assert publisher.records == []
    assert sample(registry, "ingest_requests_total", provider="agora", outcome="body_timeout") == 1


async def test_a_connection_that_never_completes_its_request_head_is_closed(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(header_timeout_s=0.3)
    began = asyncio.get_running_loop().time()
    answer = await raw_exchange(client, b"POST /v1/callbacks/agora HTTP/1.1\r\nHost: x\r\nX-Slow:", timeout_s=5)
    assert answer == b""  # closed without an answer: there is no request to answer yet
    assert asyncio.get_running_loop().time() - began < 0.3 + 1.5


async def test_a_compressed_body_is_taken_as_sent_never_inflated(client: Client, publisher: MemoryPublisher) -> None:
    inflated = callback_body(padding="0" * 10_000_000)  # 10 MB, far over the 256 KiB limit once inflated
    compressed = gzip.compress(inflated)
    headers = {**agora_headers(inflated), "Content-Encoding": "gzip"}
    response = await client.post(AGORA, data=compressed, headers=headers)
    assert response.status == 401  # signed over the inflated bytes, which are not what arrived
    response = await client.post(AGORA, data=compressed, headers={**headers, **agora_headers(compressed)})
    assert response.status == 400
    assert "not JSON" in (await response.json())["error"]
    assert publisher.records == []


@pytest.mark.parametrize("path", ["/v2/elsewhere", "/", "/v1/callbacks/%0A", "/v1/callbacks/agora/%0Amore"])
async def test_an_unknown_path_is_a_json_404(client: Client, path: str) -> None:
    response = await client.get(yarl.URL(path, encoded=True))
    assert response.status == 404
    assert "error" in await response.json()
