"""KafkaPublisher passes the Publisher contract against the real broker, and survives a frozen one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from devenv.kafka import EmbeddedKafka, free_port
from ingest.publisher import KafkaPublisher, PublishFailed, RawRecord
from tests.conftest import TopicFactory
from tests.ingest_support import wait_until
from tests.publisher_contract import PublisherContract, ReadBack, record

pytestmark = pytest.mark.kafka


async def consume(bootstrap_servers: str, topic: str, count: int, *, timeout_s: float = 10.0) -> list[RawRecord]:
    """Read the first `count` records of a topic, failing after `timeout_s`."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    records: list[RawRecord] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                message = await consumer.getone()
                records.append(RawRecord(message.key, message.value, tuple(message.headers)))
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def topic(topic_factory: TopicFactory) -> str:
    return await topic_factory("publisher")


@pytest.fixture
async def kafka_publisher(bootstrap_servers: str, topic: str) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(bootstrap_servers=bootstrap_servers, topic=topic, timeout_s=5.0)
    await publisher.start()
    yield publisher
    await publisher.stop()


class TestKafkaPublisher(PublisherContract):
    @pytest.fixture
    def publisher(self, kafka_publisher: KafkaPublisher) -> KafkaPublisher:
        return kafka_publisher

    @pytest.fixture
    def read_back(self, bootstrap_servers: str, topic: str) -> ReadBack:
        async def read(count: int) -> list[RawRecord]:
            return await consume(bootstrap_servers, topic, count)

        return read

    @pytest.fixture
    async def unavailable_publisher(self) -> AsyncIterator[KafkaPublisher]:
        publisher = KafkaPublisher(
            bootstrap_servers=f"127.0.0.1:{free_port()}",
            topic="nowhere",
            timeout_s=self.unavailable_timeout_s,
        )
        await publisher.start()
        yield publisher
        await publisher.stop()


async def test_a_frozen_broker_fails_the_publish_within_the_timeout_and_recovers(
    short_lived_kafka: EmbeddedKafka, topic_factory: TopicFactory
) -> None:
    bootstrap = short_lived_kafka.bootstrap_servers
    topic = await topic_factory("frozen", bootstrap=bootstrap)
    publisher = KafkaPublisher(bootstrap_servers=bootstrap, topic=topic, timeout_s=1.0)
    await publisher.start()
    try:
        await publisher.publish(record(1))
        short_lived_kafka.pause()
        began = time.monotonic()
        with pytest.raises(PublishFailed):
            await publisher.publish(record(2))
        assert time.monotonic() - began < 2.0
        assert not await publisher.ready()

        short_lived_kafka.resume()
        await wait_until(publisher.ready, timeout_s=10)
        await publisher.publish(record(3))
    finally:
        short_lived_kafka.resume()
        await publisher.stop()
    written = [r.value for r in await consume(bootstrap, topic, 2)]
    assert written[0] == record(1).value
