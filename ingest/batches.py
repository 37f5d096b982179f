"""The raw topic's records in per-partition Kafka batches (kafkaio.batches), each with an acknowledgement of its own."""

from __future__ import annotations

import asyncio
import copy

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from kafkaio.batches import MAX_REQUEST_BYTES, Headers, PartitionBatches

__all__ = ["MAX_REQUEST_BYTES", "Batches"]


class Batches:
    """Append records of one topic to per-partition batches; each `add` returns a future of the record's own.

    A request that gives up on its record (its publish timeout) fails only its own future: the batch is still sent,
    and the other records of the batch are answered as the broker answers it.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, linger_s: float) -> None:
        self._batches = PartitionBatches(producer, linger_s=linger_s)
        self._topic = topic
        self._loop = asyncio.get_running_loop()
        #: Each batch's acknowledgement → the futures of its records.
        self._waiters: dict[asyncio.Future[None], list[asyncio.Future[None]]] = {}

    def add(self, key: bytes, value: bytes, headers: Headers) -> asyncio.Future[None] | None:
        """Append a record to its partition's batch; return a future set once the broker acknowledged it.

        Returns None, without adding anything, while the producer knows no partitions of the topic (then
        `wait_for_topic` and add again).

        Raises:
            KafkaError: the record is too large to be sent.
        """
        acked = self._batches.add(self._topic, key, value, headers)
        if acked is None:
            return None
        waiters = self._waiters.get(acked)
        if waiters is None:
            waiters = self._waiters[acked] = []
            acked.add_done_callback(self._answer)
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiters.append(waiter)
        return waiter

    async def wait_for_topic(self) -> None:
        """Wait until the producer knows the topic's partitions (raise KafkaError if it does not exist)."""
        await self._batches.wait_for_topic(self._topic)

    async def flush(self) -> None:
        """Send every batch now and wait until each is acknowledged or failed."""
        await self._batches.flush()

    def _answer(self, acked: asyncio.Future[None]) -> None:
        error = acked.exception() if not acked.cancelled() else KafkaError("the delivery was cancelled")
        for waiter in self._waiters.pop(acked):
            if waiter.done():  # a request that timed out has given up its own
                continue
            if error is None:
                waiter.set_result(None)
            else:
                # One copy each: an exception raised in many tasks would collect all their tracebacks.
                waiter.set_exception(copy.copy(error))
