"""Records gathered into one Kafka batch per partition, one batch in flight per partition: aiokafka's batching,
without its per-record coroutines, futures and metadata lookups."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ingest.partitions import partition_for

#: The producer's `max_request_size` (aiokafka's default): a record that cannot fit in a request is refused.
MAX_REQUEST_BYTES = 1_048_576

Headers = list[tuple[str, bytes]]


class _Lane:
    """One partition's records: the batch being filled, full batches waiting, and whether one is in flight."""

    __slots__ = ("builder", "full", "in_flight", "linger", "partition", "waiters")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.builder: Any = None  # aiokafka's BatchBuilder (untyped)
        self.waiters: list[asyncio.Future[None]] = []
        self.full: deque[tuple[Any, list[asyncio.Future[None]]]] = deque()
        self.in_flight = False
        self.linger: asyncio.TimerHandle | None = None


class Batches:
    """Append records to per-partition batches and send them with `send_batch`, keeping aiokafka's guarantees.

    `AIOKafkaProducer.send` costs tens of µs of Python per record (two coroutines, a future, metadata lookups,
    the partitioner); appending to a batch builder costs one C call. The batches still go through the producer's
    own accumulator and sender: acks=all, idempotent sequence numbers, retries. As in the producer, a partition
    has at most one batch in flight (the sender mutes it meanwhile), the next one fills up until the broker
    answers, and a new batch lingers `linger_s` to gather records.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, linger_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._linger_s = linger_s
        self._lanes: dict[int, _Lane] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    def add(self, key: bytes, value: bytes, headers: Headers) -> asyncio.Future[None] | None:
        """Append a record to its partition's batch; return a future set once the broker acknowledged it.

        Returns None, without adding anything, while the producer knows no partitions of the topic (then
        `wait_for_topic` and add again).

        Raises:
            KafkaError: the record is too large to be sent.
        """
        partitions = self._producer.client.cluster.partitions_for_topic(self._topic)
        if not partitions:
            return None
        if len(value) + len(key) > MAX_REQUEST_BYTES - 1024 and (
            DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) > MAX_REQUEST_BYTES
        ):
            raise MessageSizeTooLargeError(f"the record is larger than {MAX_REQUEST_BYTES} bytes")
        # The default partitioner's arguments, as AIOKafkaProducer.send passes them.
        partition = partition_for(key, list(partitions), ())
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = _Lane(partition)
        if lane.builder is None or lane.builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if lane.builder is not None:  # full: it goes as it is, the record starts the next batch
                lane.full.append((lane.builder, lane.waiters))
            lane.builder, lane.waiters = self._producer.create_batch(), []
            lane.builder.append(timestamp=None, key=key, value=value, headers=headers)  # the first always fits
        waiter: asyncio.Future[None] = self._loop.create_future()
        lane.waiters.append(waiter)
        if not lane.in_flight:
            if lane.full:
                self._send_next(lane)
            elif lane.linger is None:
                lane.linger = self._loop.call_later(self._linger_s, self._lingered, lane)
        return waiter

    async def wait_for_topic(self) -> None:
        """Wait until the producer knows the topic's partitions (raise KafkaError if it does not exist)."""
        await self._producer.partitions_for(self._topic)

    async def flush(self) -> None:
        """Send every batch now and wait until each is acknowledged or failed."""
        for lane in self._lanes.values():
            if not lane.in_flight:
                self._send_next(lane)
        while self._deliveries:
            await asyncio.wait(set(self._deliveries))

    def _lingered(self, lane: _Lane) -> None:
        lane.linger = None
        if not lane.in_flight:
            self._send_next(lane)

    def _send_next(self, lane: _Lane) -> None:
        """Send the lane's oldest full batch, else the one being filled (its linger ends), if there is one."""
        if lane.full:
            builder, waiters = lane.full.popleft()
        elif lane.builder is not None:
            builder, waiters, lane.builder, lane.waiters = lane.builder, lane.waiters, None, []
            if lane.linger is not None:
                lane.linger.cancel()
                lane.linger = None
        else:
            return
        builder.close()  # it has lingered here: the producer must not make it linger again
        lane.in_flight = True
        task = self._loop.create_task(self._deliver(lane, builder, waiters))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, lane: _Lane, builder: Any, waiters: list[asyncio.Future[None]]) -> None:
        try:
            delivery = await self._producer.send_batch(builder, self._topic, partition=lane.partition)
            await delivery
        except KafkaError as exc:
            _fail(waiters, exc)
        except BaseException as exc:  # cancelled at shutdown, or a bug: no request may wait for it in vain
            _fail(waiters, KafkaError(repr(exc)))
            lane.in_flight = False
            raise
        else:
            for waiter in waiters:
                if not waiter.done():  # a request that timed out has cancelled its own
                    waiter.set_result(None)
        lane.in_flight = False
        if lane.full or lane.builder is not None:
            self._send_next(lane)  # what gathered meanwhile has waited long enough


def _fail(waiters: list[asyncio.Future[None]], error: KafkaError) -> None:
    for waiter in waiters:
        if not waiter.done():
            # One copy each: an exception raised in many tasks would collect all their tracebacks.
            waiter.set_exception(copy.copy(error))
