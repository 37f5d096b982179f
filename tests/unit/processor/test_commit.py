"""The commit protocol with fakes for the table, the producer and the consumer: every ordering rule, every failure."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from processor.commit import Committer
from processor.core.fold import RetentionPolicy
from processor.core.reorder import ReorderPolicy
from processor.pipeline import Batch, Pipeline, Result, Written
from schemas.state import RecordingState
from tests.unit.builders import T0, body

PIPELINE = Pipeline(ReorderPolicy(), RetentionPolicy())
TOPICS: Any = {"events": "events", "state": "state", "alerts": "alerts", "dlq": "dlq"}


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    offset: int


def record(offset: int, event_type: int, sequence: int, details: dict[str, Any] | None = None, *, sid: str = "s1"):
    return Record(sid.encode(), orjson.dumps(body(event_type, sequence, details, sid=sid)), offset)


def fold(batch: Batch, rec: Record) -> Result:
    return batch.callback(rec.key, rec.value, [], now_ms=T0, position=(0, rec.offset))


class Table:
    """A dict, journaling each write with the record it was focused on."""

    def __init__(self, journal: list[tuple[Any, ...]]) -> None:
        self.values: dict[bytes, bytes] = {}
        self.journal = journal
        self.focused: Record | None = None

    def get(self, key: bytes) -> bytes | None:
        return self.values.get(key)

    def focus(self, rec: Record) -> None:
        self.focused = rec

    def put(self, key: bytes, value: bytes | None) -> None:
        assert self.focused is not None
        self.journal.append(("table", key, self.focused.offset))
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


@dataclass
class Outputs:
    """One batch's producer: every record queued gets a future the test answers; `queue` False makes it wait."""

    journal: list[tuple[Any, ...]]
    queue: bool = True
    records: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)
    acks: list[asyncio.Future[None]] = field(default_factory=list)

    def add(self, topic: str, key: bytes, value: bytes | None, headers: Any) -> object | None:
        if not self.queue:
            return None
        self.records.append((topic, key, value))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    async def send(self, topic: str, key: bytes, value: bytes | None, headers: Any) -> None:
        self.journal.append(("waited", topic))
        self.queue = True
        self.add(topic, key, value, headers)

    def pending(self) -> list[asyncio.Future[None]]:
        return list(self.acks)

    def acknowledge(self, error: Exception | None = None) -> None:
        for ack in self.acks:
            if error is None:
                ack.set_result(None)
            else:
                ack.set_exception(error)
        self.journal.append(("acknowledged", len(self.acks)))


class Consumer:
    def __init__(self, journal: list[tuple[Any, ...]]) -> None:
        self.journal = journal

    async def ack(self, rec: Record) -> bool:
        self.journal.append(("ack", rec.offset))
        return True


class World:
    """A committer wired to fakes: one `Outputs` per batch, in `outputs`."""

    def __init__(self, *, max_records: int = 100) -> None:
        self.journal: list[tuple[Any, ...]] = []
        self.table = Table(self.journal)
        self.consumer = Consumer(self.journal)
        self.outputs: list[Outputs] = []
        self.noted: dict[bytes, Written] = {}
        self.stale = 0
        self.crashed: list[BaseException] = []
        self.generation = 1
        self.committer: Committer[Record] = Committer(
            PIPELINE,
            self.table,
            fold=fold,
            open_outputs=self._open,
            topics=TOPICS,
            note=self.noted.__setitem__,
            stale=self._stale,
            generation=lambda: self.generation,
            crash=self._crash,
            max_records=max_records,
            cache_recordings=1000,
            cache_idle_ms=3_600_000,
            clock_ms=lambda: T0,
        )

    def _stale(self) -> None:
        self.stale += 1

    async def _open(self) -> Outputs:
        self.outputs.append(Outputs(self.journal))
        return self.outputs[-1]

    async def _crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)

    async def batch(self, *records: Record) -> Outputs:
        """Add the records and close their batch; return its outputs."""
        for rec in records:
            await self.committer.add(self.consumer, rec)
        await self.committer.close()
        return self.outputs[-1]

    async def ended(self) -> None:
        ending = self.committer._ending
        assert ending is not None
        await asyncio.wait_for(asyncio.shield(ending), 1)

    def acks(self) -> list[int]:
        return [entry[1] for entry in self.journal if entry[0] == "ack"]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def last_sequence(snapshot: bytes | None) -> int:
    assert snapshot is not None
    return RecordingState.model_validate_json(snapshot).last_sequence


async def test_a_batch_ends_outputs_acknowledged_then_table_written_then_records_acked():
    world = World()
    outputs = await world.batch(record(0, 40, 0), record(1, 33, 1, {"progress": 1}), record(2, 40, 0, sid="s2"))
    topics = [topic for topic, _, _ in outputs.records]
    assert ("state" not in topics[:-2], topics[-2:]) == (True, ["state", "state"])  # one snapshot per sid, last
    await settle()
    assert (world.table.values, world.acks()) == ({}, [])  # nothing is durable before its outputs are
    outputs.acknowledge()
    await world.ended()
    assert world.journal == [
        ("acknowledged", len(topics)),
        ("table", b"s1", 1),  # written in the partition of the key's latest record
        ("table", b"s2", 2),
        ("ack", 0),
        ("ack", 1),
        ("ack", 2),
    ]
    assert last_sequence(PIPELINE.describe(world.table.values[b"s1"])) == 1
    assert world.crashed == []


async def test_a_failed_output_crashes_the_worker_and_acks_nothing_of_its_batch_or_of_later_ones():
    world = World()
    first = await world.batch(record(0, 40, 0))
    second = await world.batch(record(1, 33, 1, {"progress": 1}))
    second.acknowledge()
    error = RuntimeError("delivery failed")
    first.acknowledge(error)
    await settle()
    assert world.crashed == [error, error]  # each batch crashes the worker: the first, then the one after it
    assert (world.table.values, world.acks()) == ({}, [])
    with pytest.raises(RuntimeError, match="delivery failed"):  # and the agent, at its next batch
        await world.batch(record(2, 33, 2, {"progress": 2}))
    with pytest.raises(RuntimeError, match="delivery failed"):  # the batch it closed fails to end as well
        await asyncio.shield(world.committer._ending)
    assert (world.table.values, world.acks()) == ({}, [])


async def test_batches_end_in_order_when_a_later_batchs_outputs_are_acknowledged_first():
    world = World()
    first = await world.batch(record(0, 40, 0))
    second = await world.batch(record(1, 40, 0, sid="s2"))
    second.acknowledge()
    await settle()
    assert (world.table.values, world.acks()) == ({}, [])  # the second waits for the first
    first.acknowledge()
    await world.ended()
    assert [entry for entry in world.journal if entry[0] != "acknowledged"] == [
        ("table", b"s1", 0),
        ("ack", 0),
        ("table", b"s2", 1),
        ("ack", 1),
    ]


async def test_the_snapshot_in_flight_is_the_newest_sent_until_the_table_holds_it():
    world = World()
    first = await world.batch(record(0, 40, 0))
    assert last_sequence(world.committer.snapshot(b"s1")) == 0  # answered before the table holds anything
    second = await world.batch(record(1, 33, 1, {"progress": 1}))
    assert last_sequence(world.committer.snapshot(b"s1")) == 1
    first.acknowledge()
    await settle()
    assert last_sequence(PIPELINE.describe(world.table.values[b"s1"])) == 0
    assert last_sequence(world.committer.snapshot(b"s1")) == 1  # the table is behind: never an older answer
    second.acknowledge()
    await world.ended()
    assert (len(world.committer.in_flight), last_sequence(world.committer.snapshot(b"s1"))) == (0, 1)
    assert world.committer.snapshot(b"unknown") is None


async def test_a_batch_closed_after_a_forget_drops_its_cache_notes_nothing_and_says_the_view_is_stale():
    world = World()
    await world.committer.add(world.consumer, record(0, 40, 0))
    world.committer.forget()  # a rebalance while the batch was open
    await world.committer.close()
    assert (world.committer.cache, world.noted, world.stale) == ({}, {}, 1)
    await world.batch(record(1, 40, 0, sid="s2"))
    assert list(world.committer.cache) == [b"s2"]
    assert list(world.noted) == [b"s2"]


async def test_a_new_consumer_generation_drops_the_cache_even_without_a_signal():
    world = World()
    (await world.batch(record(0, 40, 0))).acknowledge()
    await world.ended()
    assert list(world.committer.cache) == [b"s1"]
    world.generation = 2
    await world.committer.add(world.consumer, record(1, 40, 0, sid="s2"))
    assert world.committer.cache == {}  # s1 is read from the table again if it is still ours


async def test_a_full_batch_closes_itself():
    world = World(max_records=2)
    for offset in range(3):
        await world.committer.add(world.consumer, record(offset, 40, 0, sid=f"s{offset}"))
    assert [len(outputs.records) for outputs in world.outputs] == [4, 1]  # 2 events and 2 snapshots; 1 event


async def test_an_output_that_cannot_be_queued_at_once_is_sent_waiting():
    world = World()
    await world.committer.add(world.consumer, record(0, 40, 0))
    world.outputs[-1].queue = False  # the producer does not know the topic yet
    await world.committer.add(world.consumer, record(1, 40, 0, sid="s2"))
    assert ("waited", "events") in world.journal
    assert len(world.outputs[-1].records) == 2


async def test_the_stored_value_of_a_recording_is_its_batchs_until_that_batch_is_in_the_table():
    world = World()
    first = await world.batch(record(0, 40, 0))
    first.acknowledge()
    await world.ended()
    second = await world.batch(record(1, 33, 1, {"progress": 1}))
    assert world.committer.stored(b"s1") != world.table.values[b"s1"]  # the newer one, not yet in the table
    assert PIPELINE.describe(world.committer.stored(b"s1") or b"") == world.committer.snapshot(b"s1")
    second.acknowledge()
    await world.ended()
    assert world.committer.stored(b"s1") == world.table.values[b"s1"]
    assert world.committer.stored(b"unknown") is None
