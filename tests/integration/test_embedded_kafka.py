"""The embedded broker and idempotent topic creation work against a real Kafka."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from devenv.kafka import EmbeddedKafka, KafkaStartError, free_port, metadata_answers
from devenv.topics import TopicSpec, ensure_topics
from tests.conftest import TopicFactory
from tests.ingest_support import wait_until

pytestmark = pytest.mark.kafka


async def test_the_session_broker_answers_metadata_requests(kafka: EmbeddedKafka) -> None:
    assert kafka.is_running()
    assert await metadata_answers(kafka.bootstrap_servers)


async def test_a_closed_port_does_not_answer_metadata_requests() -> None:
    assert not await metadata_answers(f"127.0.0.1:{free_port()}", timeout_s=0.5)


async def test_ensure_topics_is_idempotent_and_grows_partitions(bootstrap_servers: str) -> None:
    name = f"idempotent-{uuid.uuid4().hex}"
    spec = TopicSpec(name, partitions=2, configs={"retention.ms": "3600000"})
    await ensure_topics(bootstrap_servers, [spec])
    await ensure_topics(bootstrap_servers, [spec])
    await ensure_topics(bootstrap_servers, [TopicSpec(name, partitions=3)])

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:

        async def has_three_partitions() -> bool:
            # The broker's metadata catches up with the controller asynchronously.
            (described,) = await admin.describe_topics([name])
            return len(described["partitions"]) == 3

        await wait_until(has_three_partitions, timeout_s=10)
    finally:
        await admin.close()


async def test_a_record_produced_with_acks_all_is_consumed_back(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    topic = await topic_factory()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"value", key=b"key")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=10)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"key", b"value")


async def test_a_killed_broker_restarts_on_the_same_address_with_its_acknowledged_records(
    short_lived_kafka: EmbeddedKafka, topic_factory: TopicFactory
) -> None:
    bootstrap = short_lived_kafka.bootstrap_servers
    topic = await topic_factory("survives", bootstrap=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before", key=b"key")
    finally:
        await producer.stop()

    short_lived_kafka.kill()
    assert not short_lived_kafka.is_running()
    assert not await metadata_answers(bootstrap, timeout_s=0.5)
    short_lived_kafka.restart(wait=False)  # launched from this (long-lived) thread: the broker dies with its launcher
    await asyncio.to_thread(short_lived_kafka.wait_until_ready)  # it waits with an event loop of its own

    assert short_lived_kafka.is_running()
    assert short_lived_kafka.bootstrap_servers == bootstrap
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"key", b"before")


def test_restart_refuses_a_broker_that_never_started() -> None:
    with pytest.raises(KafkaStartError, match="started"):
        EmbeddedKafka().restart()
