"""Where the worker's outputs go (`commit.Outputs`): Faust's producer, batched at least once, or transactional.

At least once, outputs are appended to per-partition Kafka batches of Faust's own aiokafka producer
(`kafkaio.batches`: `producer.send` cost ~25 µs of Python per record, a tenth of the worker's CPU); a batch of
input records ends once every such batch holding its outputs is acknowledged. Exactly once, each output is sent
with Faust's transaction manager (`app.maybe_start_producer`), in the transaction Faust commits with the offsets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kafkaio.batches import PartitionBatches
from processor.commit import Headers, Outputs
from processor.faust_internals import kafka_producer


class BatchedOutputs:
    """Records appended to the per-partition batches of one aiokafka producer (at least once)."""

    def __init__(self, batches: PartitionBatches) -> None:
        self.batches = batches
        # Bound once: `add` is called for every output, and a wrapper would cost a call each time.
        self.add = batches.add
        self.pending: Callable[[], list[Awaitable[object]]] = batches.pending  # type: ignore[assignment]  # list is invariant; futures are awaitables

    async def send(self, topic: str, key: bytes, value: bytes | None, headers: Headers, /) -> None:
        """Append a record once the producer knows the topic's partitions."""
        while self.batches.add(topic, key, value, headers) is None:
            await self.batches.wait_for_topic(topic)


class TransactionOutputs:
    """Records sent one by one with Faust's transaction manager (exactly once); one per batch of input records."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.acks: list[Awaitable[object]] = []

    def add(self, topic: str, key: bytes, value: bytes | None, headers: Headers, /) -> None:
        """Queue nothing: a transactional send is a coroutine (see `send`)."""
        del topic, key, value, headers

    async def send(self, topic: str, key: bytes, value: bytes | None, headers: Headers, /) -> None:
        """Send one record in the current transaction."""
        # The producer's own send, not Topic.send: one record, no FutureMessage and sensor round trip around it.
        self.acks.append(await self.producer.send(topic, key, value, None, None, list(headers) if headers else None))

    def pending(self) -> list[Awaitable[object]]:
        """Return the acknowledgements of every record sent."""
        return self.acks


class ProducerOutputs:
    """Opens the outputs of each batch on Faust's current producer (it may be replaced between batches)."""

    def __init__(self, start_producer: Callable[[], Awaitable[Any]], *, transactional: bool, linger_s: float) -> None:
        self.start_producer, self.transactional, self.linger_s = start_producer, transactional, linger_s
        self.batched: BatchedOutputs | None = None

    async def open(self) -> Outputs:
        """Return where the next batch's outputs go."""
        producer = await self.start_producer()  # under exactly_once, the transaction manager
        if self.transactional:
            return TransactionOutputs(producer)
        kafka = kafka_producer(producer)
        if self.batched is None or self.batched.batches.producer is not kafka:
            self.batched = BatchedOutputs(PartitionBatches(kafka, linger_s=self.linger_s))
        return self.batched
