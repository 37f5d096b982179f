"""Records gathered into one Kafka batch per partition, one batch in flight per partition: aiokafka's batching,
without its per-record coroutines, futures and metadata lookups."""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ingest.partitions import partition_for

#: The producer's `max_request_size` (aiokafka's default): a record that cannot fit in a request is refused.
MAX_REQUEST_BYTES = 1_048_576

Headers = list[tuple[str, bytes]]
Waiters = list[asyncio.Future[None]]


class _Lane:
    """One partition's records: the batch being filled, full batches waiting, and whether one is in flight."""

    __slots__ = ("builder", "full", "in_flight", "partition", "since", "waiters")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.builder: Any = None  # aiokafka's BatchBuilder (untyped)
        self.waiters: Waiters = []
        #: When the batch being filled got its first record (event loop time).
        self.since = 0.0
        self.full: deque[tuple[Any, Waiters]] = deque()
        self.in_flight = False

    def has_records(self) -> bool:
        return bool(self.full) or self.builder is not None

    def take(self) -> tuple[Any, Waiters]:
        """Remove and return the oldest full batch, else the one being filled."""
        if self.full:
            return self.full.popleft()
        batch = self.builder, self.waiters
        self.builder, self.waiters = None, []
        return batch


class Batches:
    """Append records to per-partition batches and send them with `send_batch`, keeping aiokafka's guarantees.

    `AIOKafkaProducer.send` costs tens of µs of Python per record (two coroutines, a future, metadata lookups,
    the partitioner); appending to a batch builder costs one C call. The batches still go through the producer's
    own accumulator and sender: acks=all, idempotent sequence numbers, retries. As in the producer, a partition
    has at most one batch in flight (the sender mutes it meanwhile), the next one fills up until the broker
    answers, and records wait at most `linger_s` for others to join them before their batch is sent. Batches
    are handed over together, so that the sender puts them in one request.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, linger_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._linger_s = linger_s
        self._lanes: dict[int, _Lane] = {}
        #: Lanes with records to send and none in flight, to be sent together when the linger ends.
        self._lingering: set[_Lane] = set()
        self._linger: asyncio.TimerHandle | None = None
        #: Lanes free to send again, handed over by the next `_submit` task (one for all of them).
        self._due: set[_Lane] = set()
        self._submitting: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Future[Any]] = set()
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
            lane.since = self._loop.time()
        waiter: asyncio.Future[None] = self._loop.create_future()
        lane.waiters.append(waiter)
        if not lane.in_flight:
            if lane.full:  # a full batch has nothing to wait for
                self._make_due(lane)
            elif lane not in self._due:
                self._linger_until_due(lane)
        return waiter

    async def wait_for_topic(self) -> None:
        """Wait until the producer knows the topic's partitions (raise KafkaError if it does not exist)."""
        await self._producer.partitions_for(self._topic)

    async def flush(self) -> None:
        """Send every batch now and wait until each is acknowledged or failed."""
        while True:
            if self._linger is not None:
                self._linger.cancel()
                self._linger = None
            for lane in self._lanes.values():
                if lane.has_records() and not lane.in_flight:
                    self._make_due(lane)
            if self._submitting is not None:
                await asyncio.wait([self._submitting])
            elif self._in_flight:
                await asyncio.wait(set(self._in_flight))
            else:
                return

    def _linger_until_due(self, lane: _Lane) -> None:
        """Send the lane's batch once its first record has waited `linger_s` (aiokafka's linger, from creation)."""
        self._lingering.add(lane)
        due = lane.since + self._linger_s
        if self._linger is None or self._linger.when() > due:
            if self._linger is not None:
                self._linger.cancel()
            self._linger = self._loop.call_at(due, self._lingered)

    def _lingered(self) -> None:
        self._linger = None
        now, later = self._loop.time(), None
        for lane in list(self._lingering):
            due = lane.since + self._linger_s
            if lane.in_flight or not lane.has_records():
                self._lingering.discard(lane)
            elif lane.full or due <= now:
                self._make_due(lane)
            else:
                later = due if later is None else min(later, due)
        if later is not None:
            self._linger = self._loop.call_at(later, self._lingered)

    def _make_due(self, lane: _Lane) -> None:
        self._lingering.discard(lane)
        self._due.add(lane)
        if self._submitting is None:
            self._submitting = self._loop.create_task(self._submit())

    async def _submit(self) -> None:
        """Hand every due lane's next batch to the producer (none of these awaits waits: see `_send`)."""
        try:
            while self._due:
                lane = self._due.pop()
                if lane.in_flight or not lane.has_records():
                    continue
                builder, waiters = lane.take()
                await self._send(lane, builder, waiters)
        finally:
            self._submitting = None

    async def _send(self, lane: _Lane, builder: Any, waiters: Waiters) -> None:
        builder.close()  # it has lingered here: the producer must not make it linger again
        lane.in_flight = True
        try:
            # Returns at once: the producer holds no batch of this partition (ours was acknowledged, or failed)
            # and knows the topic (add checked it).
            delivery = await self._producer.send_batch(builder, self._topic, partition=lane.partition)
        except KafkaError as exc:
            self._delivered(lane, waiters, exc)
        except BaseException as exc:  # cancelled at shutdown, or a bug: no request may wait for it in vain
            self._delivered(lane, waiters, KafkaError(repr(exc)))
            raise
        else:
            self._in_flight.add(delivery)
            delivery.add_done_callback(functools.partial(self._on_delivery, lane, waiters))

    def _on_delivery(self, lane: _Lane, waiters: Waiters, delivery: asyncio.Future[Any]) -> None:
        self._in_flight.discard(delivery)
        error = delivery.exception() if not delivery.cancelled() else KafkaError("the delivery was cancelled")
        if error is not None and not isinstance(error, KafkaError):
            error = KafkaError(repr(error))
        self._delivered(lane, waiters, error)

    def _delivered(self, lane: _Lane, waiters: Waiters, error: KafkaError | None) -> None:
        for waiter in waiters:
            if waiter.done():  # a request that timed out has given up its own
                continue
            if error is None:
                waiter.set_result(None)
            else:
                # One copy each: an exception raised in many tasks would collect all their tracebacks.
                waiter.set_exception(copy.copy(error))
        lane.in_flight = False
        if lane.full or (lane.builder is not None and lane.since + self._linger_s <= self._loop.time()):
            self._make_due(lane)
        elif lane.builder is not None:
            self._linger_until_due(lane)  # as aiokafka does: a batch lingers from its creation, even after a send
