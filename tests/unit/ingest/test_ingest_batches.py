"""Per-partition batches: what is sent when, and which answer each record gets (a producer double, no broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from ingest.batches import MAX_REQUEST_BYTES, Batches
from tests.ingest_support import wait_until

TOPIC = "raw"
PARTITIONS = {0, 1, 2, 3, 4, 5}
KEY = b"sid-1"


def partition_of(key: bytes) -> int:
    return int(DefaultPartitioner()(key, list(PARTITIONS), []))


#: Keys of two other partitions than KEY's, one each.
OTHER_KEY, THIRD_KEY = list(
    {
        partition_of(key): key
        for key in (b"sid-%d" % n for n in range(2, 100))
        if partition_of(key) != partition_of(KEY)
    }.values()
)[:2]


class Sent:
    """One batch handed to the producer double: its partition, records, and the acknowledgement to give."""

    def __init__(self, partition: int, builder: Any) -> None:
        self.partition = partition
        self.records = [(r.key, r.value, r.headers) for r in MemoryRecords(bytes(builder._build())).next_batch()]
        self.ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class _Cluster:
    def __init__(self) -> None:
        self.partitions: set[int] | None = set(PARTITIONS)
        #: Each partition's leader (a broker's node id); broker 1 leads those not listed.
        self.leaders: dict[int, int] = {}
        self.listeners: list[Callable[[_Cluster], None]] = []

    def add_listener(self, listener: Callable[[_Cluster], None]) -> None:
        self.listeners.append(listener)

    def update(self, partitions: set[int] | None) -> None:
        """Take new metadata, as a refresh would, and tell the listeners."""
        self.partitions = partitions
        for listener in self.listeners:
            listener(self)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions if topic == TOPIC else None

    def leader_for_partition(self, tp: TopicPartition) -> int | None:
        return self.leaders.get(tp.partition, 1) if tp.topic == TOPIC else None


class _Client:
    def __init__(self) -> None:
        self.cluster = _Cluster()


class FakeProducer:
    """The part of AIOKafkaProducer that Batches uses; each sent batch waits for the test to acknowledge it."""

    def __init__(self, *, batch_size: int = 16384) -> None:
        self.client = _Client()
        self.batch_size = batch_size
        self.sent: list[Sent] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        assert topic == TOPIC
        assert builder.closed(), "a batch handed over must not linger in the producer again"
        sent = Sent(partition, builder)
        self.sent.append(sent)
        return sent.ack

    async def partitions_for(self, topic: str) -> set[int]:
        self.client.cluster.update(set(PARTITIONS))
        return PARTITIONS


async def settle() -> None:
    """Let every callback and task that is ready run (no time passes for the batches' linger)."""
    for _ in range(10):
        await asyncio.sleep(0)


def add(batches: Batches, key: bytes = KEY, value: bytes = b"{}") -> asyncio.Future[None]:
    waiter = batches.add(key, value, [("provider", b"agora")])
    assert waiter is not None
    return waiter


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def batches(producer: FakeProducer) -> Batches:
    return Batches(producer, TOPIC, linger_s=0)  # the double (aiokafka is untyped)


async def test_a_record_goes_to_the_partition_of_the_default_partitioner_and_is_acknowledged_with_it(
    batches: Batches, producer: FakeProducer
) -> None:
    waiter = add(batches, value=b'{"n": 1}')
    await settle()
    (sent,) = producer.sent
    assert (sent.partition, sent.records) == (partition_of(KEY), [(KEY, b'{"n": 1}', [("provider", b"agora")])])
    assert not waiter.done()
    sent.ack.set_result(None)
    await settle()
    assert waiter.done()
    assert waiter.result() is None


async def test_records_added_together_go_in_one_batch_per_partition(batches: Batches, producer: FakeProducer) -> None:
    for n in range(3):
        add(batches, KEY, b"%d" % n)
        add(batches, OTHER_KEY, b"%d" % n)
    await settle()
    assert sorted((s.partition, [r[1] for r in s.records]) for s in producer.sent) == sorted(
        [(partition_of(KEY), [b"0", b"1", b"2"]), (partition_of(OTHER_KEY), [b"0", b"1", b"2"])]
    )


async def test_a_partition_has_one_batch_in_flight_and_the_next_gathers_meanwhile_in_order(
    batches: Batches, producer: FakeProducer
) -> None:
    first = add(batches, value=b"1")
    await settle()
    later = [add(batches, value=b"%d" % n) for n in (2, 3)]
    await settle()
    assert len(producer.sent) == 1
    producer.sent[0].ack.set_result(None)
    await settle()
    assert first.done()
    assert not any(waiter.done() for waiter in later)
    assert [r[1] for r in producer.sent[1].records] == [b"2", b"3"]
    producer.sent[1].ack.set_result(None)
    await settle()
    assert all(waiter.done() for waiter in later)


async def test_a_full_batch_is_sent_at_once_and_the_record_that_did_not_fit_starts_the_next(
    producer: FakeProducer,
) -> None:
    producer.batch_size = 400  # room for two of these records (and the batch's own header)
    batches = Batches(producer, TOPIC, linger_s=3600)  # the double (aiokafka is untyped)
    waiters = [add(batches, value=b"%d" % n + b"x" * 99) for n in range(5)]
    await settle()
    assert len(producer.sent) == 1  # without waiting for the (hour-long) linger
    producer.sent[0].ack.set_result(None)
    await settle()
    assert [[r[1][:1] for r in s.records] for s in producer.sent] == [[b"0", b"1"], [b"2", b"3"]]
    assert [w.done() for w in waiters] == [True] * 2 + [False] * 3


async def test_what_filled_while_its_broker_was_busy_goes_once_the_broker_answered_however_young(
    producer: FakeProducer,
) -> None:
    producer.batch_size = 400  # room for two of these records: the first batch goes full, at once
    batches = Batches(producer, TOPIC, linger_s=3600)  # the double (aiokafka is untyped)
    waiters = [add(batches, value=b"%d" % n + b"x" * 99) for n in range(3)]
    await settle()
    assert len(producer.sent) == 1
    producer.sent[0].ack.set_result(None)
    await settle()
    # The third record's batch was started during the flight, with an hour of linger ahead: the broker is free,
    # and waiting would only make it a request of its own.
    assert [r[1][:1] for r in producer.sent[1].records] == [b"2"]
    producer.sent[1].ack.set_result(None)
    await settle()
    assert all(waiter.done() for waiter in waiters)


async def test_while_a_broker_has_a_batch_in_flight_its_other_partitions_wait_then_go_together(
    batches: Batches, producer: FakeProducer
) -> None:
    first = add(batches, KEY)
    await settle()
    waiting = [add(batches, OTHER_KEY), add(batches, THIRD_KEY)]
    await settle()
    assert len(producer.sent) == 1  # the sender would hold them until the broker answers: here they fill up
    waiting += [add(batches, OTHER_KEY), add(batches, THIRD_KEY)]
    producer.sent[0].ack.set_result(None)
    await settle()
    assert first.done()
    assert sorted((s.partition, len(s.records)) for s in producer.sent[1:]) == sorted(
        [(partition_of(OTHER_KEY), 2), (partition_of(THIRD_KEY), 2)]
    )
    for sent in producer.sent[1:]:
        sent.ack.set_result(None)
    await settle()
    assert all(waiter.done() for waiter in waiting)


async def test_a_partition_led_by_another_broker_does_not_wait_for_a_busy_one(
    batches: Batches, producer: FakeProducer
) -> None:
    producer.client.cluster.leaders[partition_of(OTHER_KEY)] = 2
    add(batches, KEY)
    await settle()
    add(batches, OTHER_KEY)
    add(batches, THIRD_KEY)  # led by the busy broker, as KEY
    await settle()
    assert sorted(s.partition for s in producer.sent) == sorted([partition_of(KEY), partition_of(OTHER_KEY)])


async def test_a_batch_waiting_for_a_busy_broker_goes_to_its_partitions_new_leader_once_one_answers(
    batches: Batches, producer: FakeProducer
) -> None:
    producer.client.cluster.leaders[partition_of(OTHER_KEY)] = 2
    add(batches, KEY)
    add(batches, OTHER_KEY)
    await settle()
    add(batches, THIRD_KEY)  # waits for broker 1
    await settle()
    producer.client.cluster.leaders[partition_of(THIRD_KEY)] = 2  # its leader moved to broker 2, which is busy too
    to = {sent.partition: sent for sent in producer.sent}
    to[partition_of(KEY)].ack.set_result(None)  # broker 1 is free, but THIRD_KEY's partition is no longer its
    await settle()
    assert len(producer.sent) == 2
    to[partition_of(OTHER_KEY)].ack.set_result(None)  # broker 2 answered
    await settle()
    assert [s.partition for s in producer.sent[2:]] == [partition_of(THIRD_KEY)]


async def test_a_new_batch_lingers_before_it_is_sent(producer: FakeProducer) -> None:
    batches = Batches(producer, TOPIC, linger_s=3600)  # the double (aiokafka is untyped)
    add(batches)
    await settle()
    assert producer.sent == []


async def test_a_failed_batch_fails_each_of_its_records_with_its_own_copy_of_the_error(
    batches: Batches, producer: FakeProducer
) -> None:
    waiters = [add(batches) for _ in range(3)]
    await settle()
    producer.sent[0].ack.set_exception(KafkaTimeoutError("no answer"))
    await settle()
    errors = [waiter.exception() for waiter in waiters]
    assert all(isinstance(error, KafkaTimeoutError) for error in errors)
    assert len({id(error) for error in errors}) == 3


async def test_after_a_failed_batch_the_partition_sends_the_next(batches: Batches, producer: FakeProducer) -> None:
    failed = add(batches)
    await settle()
    later = add(batches)
    producer.sent[0].ack.set_exception(KafkaError("broken"))
    await settle()
    assert isinstance(failed.exception(), KafkaError)
    producer.sent[1].ack.set_result(None)
    await settle()
    assert later.done()
    assert later.exception() is None


async def test_a_record_whose_wait_was_abandoned_is_still_sent_and_the_others_acknowledged(
    batches: Batches, producer: FakeProducer
) -> None:
    abandoned, kept = add(batches), add(batches)
    abandoned.cancel()  # what a request's timeout does to its own future
    await settle()
    assert len(producer.sent[0].records) == 2
    producer.sent[0].ack.set_result(None)
    await settle()
    assert kept.done()
    assert kept.exception() is None


async def test_a_record_too_large_for_a_request_is_refused_at_once(batches: Batches, producer: FakeProducer) -> None:
    with pytest.raises(MessageSizeTooLargeError):
        batches.add(KEY, b"x" * MAX_REQUEST_BYTES, [])
    assert producer.sent == []


async def test_while_the_topic_is_unknown_nothing_is_added_until_its_partitions_are(
    batches: Batches, producer: FakeProducer
) -> None:
    producer.client.cluster.update(None)
    assert batches.add(KEY, b"{}", []) is None
    await batches.wait_for_topic()
    assert batches.add(KEY, b"{}", []) is not None


async def test_flush_sends_what_lingers_and_waits_for_every_acknowledgement(producer: FakeProducer) -> None:
    batches = Batches(producer, TOPIC, linger_s=3600)  # the double (aiokafka is untyped)
    waiters = [add(batches, KEY), add(batches, OTHER_KEY)]
    flushing = asyncio.create_task(batches.flush())
    await settle()
    assert len(producer.sent) == 2
    assert not flushing.done()
    for sent in producer.sent:
        sent.ack.set_result(None)
    await asyncio.wait_for(flushing, 5)
    assert all(waiter.done() for waiter in waiters)


async def test_a_lingering_batch_is_sent_once_its_linger_ends(producer: FakeProducer) -> None:
    batches = Batches(producer, TOPIC, linger_s=0.01)  # the double (aiokafka is untyped)
    add(batches)

    async def sent() -> bool:
        return bool(producer.sent)

    await wait_until(sent, timeout_s=5, every_s=0.005)
    assert len(producer.sent[0].records) == 1


async def test_once_the_metadata_says_the_topic_gained_partitions_records_are_spread_over_all_of_them(
    batches: Batches, producer: FakeProducer
) -> None:
    grown = list(range(9))
    assert DefaultPartitioner()(KEY, grown, []) != partition_of(KEY)  # a key that moves
    add(batches, KEY)
    await settle()
    producer.sent[0].ack.set_result(None)
    producer.client.cluster.update(set(grown))
    add(batches, KEY)
    await settle()
    assert [sent.partition for sent in producer.sent] == [partition_of(KEY), DefaultPartitioner()(KEY, grown, [])]
