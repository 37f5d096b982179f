"""Records appended to one Kafka batch per topic partition and handed to aiokafka's producer with `send_batch`.

`AIOKafkaProducer.send` costs tens of µs of Python per record (two coroutines, a future, metadata lookups, the
pure-Python murmur2 partitioner); appending to a batch builder costs one C call. The batches still go through the
producer's own accumulator and sender (acks=all, idempotent sequence numbers, retries; the sender keeps one batch
in flight per partition, so order within a partition holds). The ingest waits for each record's batch, the worker
for all of its outputs' batches.

The sender has one produce request in flight per broker, and puts in it every batch it holds for that broker. So
batches are handed over as the sender would drain them: none while one of ours is in flight to the partition's
leader, all of them once that broker has answered every one. Handed over as each batch's own acknowledgement
came, they could reach the sender after it had sent the next request without them (the acknowledgement reaches us
a few event-loop turns after the sender wakes for the answer), and groups of partitions would take turns in the
requests. In the ingest's `wrk -c64` benchmark the requests in flight bound the records per request: both ways
sent about 32 per request there (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, cast

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from kafkaio.partitions import partition_for

#: The producer's `max_request_size` (aiokafka's default): a record that cannot fit in a request is refused.
MAX_REQUEST_BYTES = 1_048_576

Headers = Sequence[tuple[str, bytes]]


class _Lane:
    """One topic partition's records: the batch being filled, full batches waiting, and whether one is in flight."""

    __slots__ = ("acked", "builder", "full", "in_flight", "node", "since", "tp")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.builder: Any = None  # aiokafka's BatchBuilder (untyped)
        #: Set once the broker acknowledged the batch being filled (or failed it).
        self.acked: asyncio.Future[None] | None = None
        #: When the batch being filled got its first record (event loop time).
        self.since = 0.0
        self.full: deque[tuple[Any, asyncio.Future[None]]] = deque()
        self.in_flight = False
        #: The leader its batch in flight went to (a broker's node id; None or -1 while unknown).
        self.node: int | None = None

    def has_records(self) -> bool:
        return bool(self.full) or self.builder is not None

    def take(self) -> tuple[Any, asyncio.Future[None]]:
        """Remove and return the oldest full batch, else the one being filled."""
        if self.full:
            return self.full.popleft()
        batch = self.builder, cast(asyncio.Future[None], self.acked)  # set with the builder
        self.builder, self.acked = None, None
        return batch


class PartitionBatches:
    """Append records to per-partition batches of any topic; send them with `send_batch` after `linger_s`.

    As in the producer, a partition has at most one batch in flight, the next one fills up until the broker
    answers, and a record waits at most `linger_s` for others to join it before its batch is handed over. While a
    broker has a batch of ours in flight, the batches of every partition it leads fill up; once it answered them
    all, they are handed over together, so that the sender puts them in one request. `add` returns the future of
    the record's batch, set once the broker acknowledged the batch (or failed it): the records of one batch share it.
    """

    def __init__(self, producer: AIOKafkaProducer, *, linger_s: float) -> None:
        self.producer = producer
        self._linger_s = linger_s
        self._lanes: dict[tuple[str, int], _Lane] = {}
        #: Lanes with records to send and none in flight, to be sent together when the linger ends.
        self._lingering: set[_Lane] = set()
        self._linger: asyncio.TimerHandle | None = None
        #: Lanes free to send again, handed over by the next `_submit` task (one for all of them).
        self._due: set[_Lane] = set()
        self._submitting: asyncio.Task[None] | None = None
        #: Acknowledgements of the batches handed to the producer and not yet answered.
        self._in_flight: set[asyncio.Future[None]] = set()
        #: How many of those each broker (node id) has: its partitions' batches wait until it has none.
        self._busy: Counter[int | None] = Counter()
        self._loop = asyncio.get_running_loop()
        #: Each topic's partitions as the default partitioner is handed them, until the metadata changes: the
        #: cluster builds a new set on every call.
        self._partitions: dict[str, list[int]] = {}
        producer.client.cluster.add_listener(lambda _: self._partitions.clear())

    def add(self, topic: str, key: bytes, value: bytes | None, headers: Headers) -> asyncio.Future[None] | None:
        """Append a record to its partition's batch (keyed as the default partitioner would); return its batch's
        acknowledgement. Returns None, adding nothing, while the producer knows no partitions of the topic (then
        `wait_for_topic` and add again).

        Raises:
            KafkaError: the record is too large to be sent.
        """
        partitions = self._partitions.get(topic) or self._partitions_of(topic)
        if not partitions:
            return None
        size = len(key) + (len(value) if value is not None else 0)
        if size > MAX_REQUEST_BYTES - 1024 and (
            DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers) > MAX_REQUEST_BYTES
        ):
            raise MessageSizeTooLargeError(f"the record is larger than {MAX_REQUEST_BYTES} bytes")
        listed = list(headers) if headers else []  # the builder takes a list only
        partition = partition_for(key, partitions, ())  # every key has one: no need of the available partitions
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lanes[topic, partition] = _Lane(TopicPartition(topic, partition))
        builder = lane.builder
        if builder is None or builder.append(timestamp=None, key=key, value=value, headers=listed) is None:
            if builder is not None:  # full: it goes as it is, the record starts the next batch
                lane.full.append((builder, cast(asyncio.Future[None], lane.acked)))  # set with the builder
            lane.builder, lane.acked = self.producer.create_batch(), self._loop.create_future()
            lane.builder.append(timestamp=None, key=key, value=value, headers=listed)  # the first always fits
            lane.since = self._loop.time()
            if not lane.in_flight and not self._leader_busy(lane):
                if lane.full:  # a full batch has nothing to wait for
                    self._make_due(lane)
                elif lane not in self._due:
                    self._linger_until_due(lane)
        return lane.acked

    async def wait_for_topic(self, topic: str) -> None:
        """Wait until the producer knows the topic's partitions (raise KafkaError if it does not exist)."""
        await self.producer.partitions_for(topic)

    def _partitions_of(self, topic: str) -> list[int]:
        """Return the topic's partitions in the order AIOKafkaProducer._partition lists them (empty if unknown), and
        remember them until the metadata changes."""
        known = self.producer.client.cluster.partitions_for_topic(topic)
        if not known:
            return []
        listed = self._partitions[topic] = list(known)
        return listed

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

    def pending(self) -> list[asyncio.Future[None]]:
        """Return the acknowledgements of every batch not yet acknowledged: being filled, full or in flight."""
        found = list(self._in_flight)
        for lane in self._lanes.values():
            found.extend(acked for _, acked in lane.full)
            if lane.acked is not None:
                found.append(lane.acked)
        return found

    def _linger_until_due(self, lane: _Lane) -> None:
        """Send the lane's batch once its first record has waited `linger_s` (aiokafka's linger, from creation)."""
        self._lingering.add(lane)
        due = lane.since + self._linger_s
        if self._linger is None or self._linger.when() > due:
            if self._linger is not None:
                self._linger.cancel()
            self._linger = self._loop.call_at(due, self._lingered)

    def _lingered(self) -> None:
        # Every lingering batch goes now, not only those that waited `linger_s`: the sender then puts them all in
        # one produce request (it keeps one request in flight per broker), where batches due one after the other
        # would each make a request of their own. A record never waits longer than `linger_s`; some wait less.
        self._linger = None
        for lane in list(self._lingering):
            if lane.in_flight or not lane.has_records() or self._leader_busy(lane):  # a leader's answer sends it
                self._lingering.discard(lane)
            else:
                self._make_due(lane)

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
                builder, acked = lane.take()
                await self._send(lane, builder, acked)
        finally:
            self._submitting = None

    async def _send(self, lane: _Lane, builder: Any, acked: asyncio.Future[None]) -> None:
        builder.close()  # it has lingered here: the producer must not make it linger again
        lane.in_flight = True
        lane.node = self._leader(lane)
        self._busy[lane.node] += 1
        self._in_flight.add(acked)
        try:
            # Returns at once: the producer holds no batch of this partition (ours was acknowledged, or failed)
            # and knows the topic (add checked it).
            delivery = await self.producer.send_batch(builder, lane.tp.topic, partition=lane.tp.partition)
        except KafkaError as exc:
            self._delivered(lane, acked, exc)
        except BaseException as exc:  # cancelled at shutdown, or a bug: nothing may wait for it in vain
            self._delivered(lane, acked, KafkaError(repr(exc)))
            raise
        else:
            delivery.add_done_callback(functools.partial(self._on_delivery, lane, acked))

    def _on_delivery(self, lane: _Lane, acked: asyncio.Future[None], delivery: asyncio.Future[Any]) -> None:
        error = delivery.exception() if not delivery.cancelled() else KafkaError("the delivery was cancelled")
        if error is not None and not isinstance(error, KafkaError):
            error = KafkaError(repr(error))
        self._delivered(lane, acked, error)

    def _delivered(self, lane: _Lane, acked: asyncio.Future[None], error: KafkaError | None) -> None:
        self._in_flight.discard(acked)
        if not acked.done():
            if error is None:
                acked.set_result(None)
            else:
                acked.set_exception(copy.copy(error))
        lane.in_flight = False
        busy = self._busy
        busy[lane.node] -= 1
        if busy[lane.node] == 0:
            del busy[lane.node]
            self._release()
        elif lane.has_records() and not self._leader_busy(lane):  # its leader moved to a broker that is free
            self._make_due(lane)

    def _release(self) -> None:
        """Hand over, together, the batches of every partition whose leader has none of ours in flight.

        They all go now, however long they have lingered: the sender would otherwise send the oldest in a request
        of their own, and the others one answer later.
        """
        for lane in self._lanes.values():
            if not lane.in_flight and lane.has_records() and not self._leader_busy(lane):
                self._make_due(lane)

    def _leader(self, lane: _Lane) -> int | None:
        leader: int | None = self.producer.client.cluster.leader_for_partition(lane.tp)
        return leader

    def _leader_busy(self, lane: _Lane) -> bool:
        """Return whether the partition's leader has a batch of ours in flight (its answer will hand this one over)."""
        return self._leader(lane) in self._busy
