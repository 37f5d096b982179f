"""Kafka chores of the benchmarks: fresh topics, publishing bodies keyed by sid, reading a topic to its end, offsets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from bench.workload import sid_of
from devenv.topics import TopicSpec, ensure_topics
from processor.rawlog import topic_partitions

#: The processor's default partition count (PROCESSOR_PARTITIONS): ticks are co-partitioned with the raw topic.
PARTITIONS = 6
#: The broker stamps records of these topics on append: "arrived on the topic" is then the broker's clock.
LOG_APPEND_TIME = (("message.timestamp.type", "LogAppendTime"),)


def unique(prefix: str) -> str:
    """Return a topic or group name nobody used before."""
    return f"bench-{prefix}-{uuid.uuid4().hex[:10]}"


async def create(bootstrap_servers: str, *specs: TopicSpec) -> None:
    """Create topics (idempotent) and wait until each partition has a leader (else the first sends are retried)."""
    await ensure_topics(bootstrap_servers, list(specs))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        for _ in range(200):  # 10 s at most
            if await _led(admin, [spec.name for spec in specs]):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no leader within 10 s for some partition of {[spec.name for spec in specs]}")
    finally:
        await admin.close()


async def _led(admin: AIOKafkaAdminClient, topics: list[str]) -> bool:
    described = await admin.describe_topics(topics)
    return all(not t["error_code"] and all(p["leader"] >= 0 for p in t["partitions"]) for t in described)


async def publish(bootstrap_servers: str, topic: str, lines: Sequence[bytes], *, per_s: float | None = None) -> None:
    """Write bodies keyed by sid, in order, as the ingest does (acks=all, idempotent); at most `per_s` a second."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    pace_every, interval_s = (max(1, int(per_s // 10)), 1 / per_s) if per_s else (0, 0.0)
    try:
        for index, line in enumerate(lines):
            if pace_every and index % pace_every == 0:  # ten steps a second
                await asyncio.sleep(max(0.0, began + index * interval_s - loop.time()))
            await producer.send(topic, line, key=sid_of(line))  # queues; flush() below waits for the acks
        await producer.flush()
    finally:
        await producer.stop()


async def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """Return partition → end offset of a topic."""
    tps = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def committed(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """Return partition → committed offset of a consumer group on a topic (partitions without one are left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:  # no such group yet (or the offsets topic is being created)
        return {}
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def caught_up(bootstrap_servers: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    """Return whether the group has committed every partition of the topic up to these end offsets."""
    done = await committed(bootstrap_servers, group, topic)
    return all(done.get(partition, 0) >= end for partition, end in ends.items())


async def read_to_end(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Return every record of a topic, from its beginning to its end when the read began."""
    tps = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=10_000, max_records=5_000)
            if not batch:
                raise TimeoutError(f"{topic}: no record for 10 s before its end")
            for tp, messages in batch.items():
                records += [message for message in messages if message.offset < ends[tp]]
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records
