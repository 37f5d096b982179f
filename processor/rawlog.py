"""Where a replay reads the raw log from: a file of NCS bodies, or the raw topic of a running Kafka cluster."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One delivery as stored, and where it was found ("line 12", "partition 0 offset 5")."""

    where: str
    body: bytes


class RawLogError(Exception):
    """The raw log cannot be read (no such topic, a broker that stops answering)."""


def read_file(path: str) -> Iterator[RawEntry]:
    """Yield every line of a file ('-' for stdin), blank ones included (a replay skips them)."""
    if path == "-":
        yield from _lines(sys.stdin.buffer)
        return
    with open(path, "rb") as log:
        yield from _lines(log)


def _lines(log: Iterable[bytes]) -> Iterator[RawEntry]:
    for number, line in enumerate(log, start=1):
        yield RawEntry(f"line {number}", line)


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Records of one partition read together: their offsets and bodies, side by side."""

    partition: int
    offsets: list[int]
    bodies: list[bytes]

    def where(self, index: int) -> str:
        """Say where the batch's `index`-th record was found (only asked of a broken one)."""
        return f"partition {self.partition} offset {self.offsets[index]}"


async def read_topic(
    bootstrap_servers: str, topic: str, *, from_ms: int | None = None, idle_timeout_s: float = 30.0
) -> AsyncIterator[RawBatch]:
    """Yield a topic's records from the beginning (or from `from_ms`) up to its end when the read began.

    Partitions are read side by side: a sid's records share a partition (the ingest keys them by sid), so each
    recording still arrives in the order the ingest wrote it, which is all the fold needs. Records come in
    batches, as the consumer fetches them: a step of an async generator per record cost as much as its decode.
    """
    partitions = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        # The fetcher starts as soon as partitions are assigned, before `_seek` below: from the end (the default
        # "latest") its first fetch waits `fetch_max_wait_ms` (500 ms) for records that never come, and the
        # seek only takes effect after it. From the beginning it returns at once (0.5 s of a 0.7 s read).
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await _seek(consumer, partitions, ends, from_ms)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(idle_timeout_s * 1000), max_records=1_000)
            if not batch:
                raise RawLogError(f"{topic}: no record for {idle_timeout_s}s before the end of the log")
            for tp, messages in batch.items():
                offsets: list[int] = []
                bodies: list[bytes] = []
                for message in messages:
                    if message.offset < ends[tp] and message.value is not None:
                        offsets.append(message.offset)
                        bodies.append(message.value)
                if bodies:
                    yield RawBatch(tp.partition, offsets, bodies)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    """Return a topic's partitions, in order; RawLogError if the cluster has no such topic."""
    # The admin client describes the topic; a consumer's metadata cache only knows subscribed topics.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [
        p["partition"] for t in described if t["topic"] == topic and not t["error_code"] for p in t["partitions"]
    ]
    if not partitions:
        raise RawLogError(f"no topic {topic!r} in the cluster")
    return [TopicPartition(topic, partition) for partition in sorted(partitions)]


async def _seek(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    ends: dict[TopicPartition, int],
    from_ms: int | None,
) -> None:
    # Explicit offsets: seek_to_beginning() resets lazily, and position() may not reflect it yet.
    if from_ms is None:
        starts = await consumer.beginning_offsets(partitions)
    else:
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, from_ms))
        # No record at or after `from_ms`: nothing to read in that partition.
        starts = {tp: found[tp].offset if found[tp] is not None else ends[tp] for tp in partitions}
    for tp in partitions:
        consumer.seek(tp, starts[tp])
