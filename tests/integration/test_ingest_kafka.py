"""The ingest against a real Kafka broker: durable before 200, 503 on outages, side by side, other products skipped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition

from devenv.kafka import EmbeddedKafka, free_port
from ingest.app import init_app
from ingest.settings import IngestSettings
from tests.conftest import TopicFactory
from tests.ingest_support import AGORA_SECRET, agora_headers, callback_body, rtc_channel_body, wait_until
from tests.integration.test_kafka_publisher import consume

pytestmark = pytest.mark.kafka

AGORA = "/v1/callbacks/agora"
Client = TestClient[web.Request, web.Application]


def settings(bootstrap: str, topic: str, **overrides: object) -> IngestSettings:
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "raw_topic": topic,
        "agora_secrets": [AGORA_SECRET.decode()],
        "instance_id": "ingest-a",
        "publish_timeout_s": 1.0,
        **overrides,
    }
    return IngestSettings.model_validate(values)


@contextlib.asynccontextmanager
async def serve(config: IngestSettings) -> AsyncIterator[Client]:
    """Run the real app (KafkaPublisher included) on a loopback port for the duration of the block."""
    client = TestClient(TestServer(init_app(config), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def post(client: Client, body: bytes) -> tuple[int, dict[str, str]]:
    response = await client.post(AGORA, data=body, headers=agora_headers(body))
    return response.status, dict(response.headers)


async def end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        offsets = await consumer.end_offsets([partition])
        return int(offsets[partition])
    finally:
        await consumer.stop()


async def test_the_posted_bytes_land_on_the_topic_unchanged_keyed_by_sid_with_headers(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("raw")
    # Odd spacing and raw UTF-8: any re-serialisation would change these bytes (and break the signature).
    body = b'{"noticeId":"n-1","productId":3,"eventType":40,  "payload":{"sid":"sid-7","note":"caf\xc3\xa9"}}'
    async with serve(settings(bootstrap_servers, topic)) as client:
        status, _ = await post(client, body)
    assert status == 200
    (record,) = await consume(bootstrap_servers, topic, 1)
    assert (record.key, record.value) == (b"sid-7", body)
    headers = dict(record.headers)
    assert set(headers) == {"received-at-ms", "provider", "signature", "ingest-instance", "notice-id"}
    assert (headers["provider"], headers["notice-id"], headers["ingest-instance"]) == (b"agora", b"n-1", b"ingest-a")
    assert headers["signature"] == b"Agora-Signature-V2"


async def test_every_200_is_already_on_the_log_when_it_is_answered(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("acked")
    async with serve(settings(bootstrap_servers, topic)) as client:
        for n in range(5):
            status, _ = await post(client, callback_body(sid=f"sid-{n}"))
            assert status == 200
            # Read from the broker right after the answer: an acks=all write is already there.
            assert await end_offset(bootstrap_servers, topic) == n + 1


async def test_rtc_channel_events_are_answered_200_without_a_record_while_recording_callbacks_are_published(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("shared-address")
    recording = callback_body(sid="sid-rec", notice_id="n-rec")
    async with serve(settings(bootstrap_servers, topic)) as client:
        # One address for every product, as many projects configure it: channel created, a recording, destroyed.
        assert (await post(client, rtc_channel_body(event_type=101, notice_id="1205703979:24226:101")))[0] == 200
        assert (await post(client, recording))[0] == 200
        assert (await post(client, rtc_channel_body(event_type=102, product_id="1")))[0] == 200
        metrics = await (await client.get("/metrics")).text()
    # Every publish is acknowledged (acks=all) before its 200: after the last answer, the log holds all of them.
    assert await end_offset(bootstrap_servers, topic) == 1
    (record,) = await consume(bootstrap_servers, topic, 1)
    assert (record.key, record.value) == (b"sid-rec", recording)
    assert 'ingest_requests_total{outcome="other_product",provider="agora"} 2.0' in metrics
    assert 'ingest_requests_total{outcome="published",provider="agora"} 1.0' in metrics


async def test_an_unreachable_broker_gets_503_with_retry_after_and_readyz_fails(topic_factory: TopicFactory) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    async with serve(settings(nowhere, "recording.callbacks.raw")) as client:
        began = time.monotonic()
        status, headers = await post(client, callback_body())
        assert (status, headers["Retry-After"]) == (503, "5")
        assert time.monotonic() - began < 2.0
        assert (await client.get("/readyz")).status == 503
        assert (await client.get("/healthz")).status == 200


async def test_a_broker_that_does_not_ack_in_time_gets_503_and_readyz_follows_it(
    short_lived_kafka: EmbeddedKafka, topic_factory: TopicFactory
) -> None:
    bootstrap = short_lived_kafka.bootstrap_servers
    topic = await topic_factory("frozen", bootstrap=bootstrap)
    async with serve(settings(bootstrap, topic, publish_timeout_s=1.0)) as client:
        assert (await client.get("/readyz")).status == 200
        short_lived_kafka.pause()
        try:
            began = time.monotonic()
            status, headers = await post(client, callback_body())
            assert (status, "Retry-After" in headers) == (503, True)
            assert time.monotonic() - began < 2.5
            assert (await client.get("/readyz")).status == 503
        finally:
            short_lived_kafka.resume()

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await wait_until(ready, timeout_s=15)
        assert (await post(client, callback_body()))[0] == 200


async def test_two_ingest_instances_publish_side_by_side_to_one_topic(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory("shared", partitions=3)
    config_a = settings(bootstrap_servers, topic, instance_id="ingest-a")
    config_b = settings(bootstrap_servers, topic, instance_id="ingest-b")
    async with serve(config_a) as a, serve(config_b) as b:
        bodies = [callback_body(sid=f"sid-{n % 4}", sequence=n) for n in range(20)]
        results = await asyncio.gather(*(post(a if n % 2 else b, body) for n, body in enumerate(bodies)))
    assert {status for status, _ in results} == {200}
    written = await consume(bootstrap_servers, topic, 20)
    assert sorted(r.value for r in written) == sorted(bodies)
    assert {dict(r.headers)["ingest-instance"] for r in written} == {b"ingest-a", b"ingest-b"}
