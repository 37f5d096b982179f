"""Per-partition batches (kafkaio.batches) against a real broker: same partitions, order, headers and tombstones
as AIOKafkaProducer.send, and an acknowledgement only once the broker has the records."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from kafkaio.batches import PartitionBatches
from tests.conftest import TopicFactory

pytestmark = pytest.mark.kafka

PARTITIONS = 4


async def read_all(bootstrap_servers: str, topic: str, count: int) -> list[tuple[int, bytes, bytes | None, list]]:
    """Return (partition, key, value, headers) of the first `count` records, each partition in its order."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    found = []
    try:
        async with asyncio.timeout(20):
            while len(found) < count:
                message = await consumer.getone()
                found.append((message.partition, message.key, message.value, list(message.headers)))
    finally:
        await consumer.stop()
    return found


async def test_records_land_where_send_would_put_them_in_order(
    bootstrap_servers: str, topic_factory: TopicFactory
) -> None:
    events, state = await topic_factory("outputs", partitions=PARTITIONS), await topic_factory("outputs", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        outputs = PartitionBatches(producer, linger_s=0.005)
        acks = []
        sent: list[tuple[bytes, bytes]] = []
        for n in range(300):  # more than one batch per partition, some while others are in flight
            key, value = f"sid-{n % 37}".encode(), f"event-{n}".encode()
            while (acked := outputs.add(events, key, value, ())) is None:
                await outputs.wait_for_topic(events)
            acks.append(acked)
            sent.append((key, value))
            if n % 50 == 0:
                await asyncio.sleep(0.002)
        while outputs.add(state, b"sid-1", None, (("dlq-kind", b"x"),)) is None:  # a tombstone with a header
            await outputs.wait_for_topic(state)
        pending = outputs.pending()
        assert pending, "records not yet acknowledged are pending"
        await asyncio.wait_for(asyncio.gather(*pending), 20)
        assert all(acked.done() and acked.exception() is None for acked in acks)
        assert outputs.pending() == []
    finally:
        await producer.stop()

    partitioner = DefaultPartitioner()
    expected: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in sent:
        expected[partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))].append((key, value))
    got: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
    for partition, key, value, _ in await read_all(bootstrap_servers, events, len(sent)):
        got[partition].append((key, value))
    assert got == expected
    assert await read_all(bootstrap_servers, state, 1) == [(0, b"sid-1", None, [("dlq-kind", b"x")])]
