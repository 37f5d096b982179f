"""The commit protocol: input records are folded in batches, and a batch is acked only once it is durable.

Each record is folded as it arrives and its outputs are sent at once. A batch is closed when it holds
`max_records` or when the batch timer calls `close`: its snapshots (one per changed sid) are sent, and the batch
then ends in the background, in four steps and in batch order:

1. the batch before it has ended (batches end in the order they were closed);
2. every output of the batch is acknowledged by Kafka (acks=all);
3. the table's changelog records that stand for the batch are written;
4. the batch's records are acked, after which the consumer may commit their offsets.

So a changelog record is never durable without the outputs it stands for (with several brokers they go to different
partition leaders: queueing order alone would not say which is written first), and whatever a crash interrupts is
read again. A step that fails crashes the worker, and nothing of that batch or of any later one is acked. Waiting
for the acknowledgements holds up no processing: the next batch fills meanwhile.

Until its batch has ended, a recording's newest snapshot is answered from `InFlight`, so a reader of the query API
who saw a snapshot on the state topic never gets an older one. The live recordings (`cache`) are forgotten whenever
the partitions they came from may no longer be ours (an assignment, a revocation, a recovery).

The framework is reached only through the small interfaces below (`Table`, `Outputs`, `Acker`); the agent passes in
Faust's. Shaped like quix-streams' `checkpointing/checkpoint.py` (steps in order, one module, tested with fakes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from processor.core.fold import Tracked
from processor.pipeline import Batch, InFlight, Outgoing, Pipeline, Result, Role, Write, Written, trim

Headers = Sequence[tuple[str, bytes]]


class Record(Protocol):
    """An input record; the protocol only keys it by its table key (the fold reads the rest)."""

    @property
    def key(self) -> Any:
        """The table key (bytes)."""


R = TypeVar("R", bound=Record)
R_contra = TypeVar("R_contra", bound=Record, contravariant=True)


class Table(Protocol[R_contra]):
    """The changelogged table of recordings, whose partition is the input record's."""

    def get(self, key: bytes, /) -> bytes | None:
        """Return what the table holds for `key` (of the partition of the record in `focus`)."""

    def focus(self, record: R_contra, /) -> None:
        """Make `record` the one the next reads and writes belong to (their partition is its partition)."""

    def put(self, key: bytes, value: bytes | None, /) -> None:
        """Hold `value` for `key` (None: delete it) and queue its changelog record."""


class Outputs(Protocol):
    """Where a batch's outputs go: the producer, and the acknowledgements it owes."""

    def add(self, topic: str, key: bytes, value: bytes | None, headers: Headers, /) -> object | None:
        """Queue one record without waiting; None if it was not queued (then `send` it)."""

    async def send(self, topic: str, key: bytes, value: bytes | None, headers: Headers, /) -> None:
        """Queue one record, waiting as long as that takes (a topic's metadata, a transaction)."""

    def pending(self) -> list[Awaitable[object]]:
        """Return the acknowledgements of the records queued so far that may not have been acknowledged yet."""


class Acker(Protocol[R_contra]):
    """The consumer's side: an acked record's offset may be committed."""

    def ack(self, record: R_contra, /) -> Awaitable[object]:
        """Acknowledge one input record."""


@dataclass(slots=True)
class _Open(Generic[R]):
    """A batch being filled: its records, where its outputs go, and the latest record of each table key."""

    batch: Batch
    acker: Acker[R]
    outputs: Outputs
    #: `Committer.epoch` when it was opened: a batch opened before a `forget` may hold recordings no longer ours.
    epoch: int
    records: list[R] = field(default_factory=list)
    latest: dict[bytes, R] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Closed(Generic[R]):
    """A closed batch on its way to the table: its writes and the acknowledgements its outputs wait for."""

    opened: _Open[R]
    writes: list[Write]
    acks: list[Awaitable[object]]


class Committer(Generic[R]):
    """Fold input records into batches, send their outputs, and end each batch in the table, then in the consumer.

    Args:
        fold: folds one record into a batch (the pipeline's call for its topic, and its metrics).
        open_outputs: where the next batch's outputs go (the producer may change between batches).
        note: told each changed recording of a batch as it closes (the local view of the query API).
        stale: told when a batch opened before a `forget` closes: its recordings are not noted (they may be of
            partitions no longer ours), so what the local view knows must be read again.
        generation: the consumer group's generation: a change means a rebalance, whether signalled or not.
        crash: stops the worker after a failed step.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        table: Table[R],
        *,
        fold: Callable[[Batch, R], Result],
        open_outputs: Callable[[], Awaitable[Outputs]],
        topics: Mapping[Role, str],
        note: Callable[[bytes, Written], None],
        stale: Callable[[], None],
        generation: Callable[[], int],
        crash: Callable[[BaseException], Awaitable[object]],
        max_records: int,
        cache_recordings: int,
        cache_idle_ms: int,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.pipeline, self.table, self.fold, self.open_outputs = pipeline, table, fold, open_outputs
        self.topics, self.note, self.generation, self.crash = topics, note, generation, crash
        self.stale = stale
        self.max_records, self.cache_recordings, self.cache_idle_ms = max_records, cache_recordings, cache_idle_ms
        self.clock_ms = clock_ms
        #: Live recordings by table key, each what the table holds or will once the batches in flight end.
        self.cache: dict[bytes, Tracked] = {}
        #: Table keys whose live recording is newer than the table (their batch has not ended): never trimmed.
        self.in_flight = InFlight()
        #: Bumped by every `forget`.
        self.epoch = 0
        self._generation = -1
        self._open: _Open[R] | None = None
        self._ending: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop every live recording: the table is the truth again."""
        self.cache.clear()
        self.epoch += 1

    async def add(self, acker: Acker[R], record: R) -> None:
        """Fold one record into the open batch and send its outputs; close the batch when it is full."""
        async with self._lock:
            opened = self._open or await self._start(acker)
            self.table.focus(record)  # the table reads the record's partition (RocksDB)
            outputs, topics = opened.outputs, self.topics
            for out in self.fold(opened.batch, record).outgoing:
                # The common case (at least once, a known topic) appends to a batch: no coroutine per output.
                if outputs.add(topics[out.role], out.key, out.value, out.headers) is None:
                    await outputs.send(topics[out.role], out.key, out.value, out.headers)
            opened.records.append(record)
            opened.latest[record.key] = record
            if len(opened.records) >= self.max_records:
                await self._close()

    async def close(self) -> None:
        """Close the open batch, if any, and let idle recordings leave the cache (the batch timer)."""
        async with self._lock:
            await self._close()
            self._trim()

    def stored(self, key: bytes) -> bytes | None:
        """Return the newest value of `key`: the table's once the batches in flight have ended (None: none)."""
        write = self.in_flight.get(key)
        return write.stored if write is not None else self.table.get(key)

    def snapshot(self, key: bytes) -> bytes | None:
        """Return the recording's newest snapshot sent to the state topic, None if it is unknown or forgotten."""
        write = self.in_flight.get(key)
        if write is not None:
            return write.state.value
        stored = self.table.get(key)
        return None if stored is None else self.pipeline.describe(stored)

    async def _start(self, acker: Acker[R]) -> _Open[R]:
        if self._generation != self.generation():  # a rebalance the signals did not tell us of
            self._generation = self.generation()
            self.forget()
        outputs = await self.open_outputs()
        self._open = _Open(Batch(self.pipeline, self.cache, self.table.get), acker, outputs, self.epoch)
        return self._open

    async def _close(self) -> None:
        opened, self._open = self._open, None
        if opened is None:
            return
        writes = opened.batch.writes()
        if self.epoch != opened.epoch:  # forgotten meanwhile: what it cached may be of a partition no longer ours
            self.forget()
            self.stale()
        else:  # the query API lists what the state topic is about to show (else the view is filled from the table)
            for write in writes:
                self.note(write.key, opened.batch.changed[write.key])
        self.in_flight.sent(writes)
        self._trim()
        for write in writes:
            await self._send(opened.outputs, write.state)
        closed = _Closed(opened, writes, opened.outputs.pending())  # every output of the batch is among these
        previous, self._ending = self._ending, asyncio.ensure_future(self._end(self._ending, closed))
        if previous is not None and previous.done():
            previous.result()  # a batch that failed to end crashes the agent (and the worker) here

    async def _end(self, previous: asyncio.Future[None] | None, closed: _Closed[R]) -> None:
        """End a closed batch: the four steps, in order; nothing of it or of later batches is acked on failure."""
        try:
            # Step 1. The batch before has ended (or failed: then this one fails too).
            if previous is not None:
                await previous
            # Step 2. Every output of the batch is acknowledged.
            await asyncio.gather(*closed.acks)
            # Step 3. The table holds the batch (its changelog records are queued, each in its record's partition).
            self._write_table(closed)
            # Step 4. The records are acked: the consumer commits their offsets (after flushing the producer).
            for record in closed.opened.records:
                await closed.opened.acker.ack(record)
        except Exception as exc:  # read again after the restart
            await self.crash(exc)
            raise

    def _write_table(self, closed: _Closed[R]) -> None:
        for write in closed.writes:
            self.table.focus(closed.opened.latest[write.key])  # the changelog partition is the record's
            self.table.put(write.key, write.stored)
            self.in_flight.stored(write)

    def _trim(self) -> None:
        idle_since_ms = self.clock_ms() - self.cache_idle_ms
        trim(self.cache, self.cache_recordings, idle_since_ms=idle_since_ms, keep=self.in_flight)

    async def _send(self, outputs: Outputs, out: Outgoing) -> None:
        topic = self.topics[out.role]
        if outputs.add(topic, out.key, out.value, out.headers) is None:
            await outputs.send(topic, out.key, out.value, out.headers)
