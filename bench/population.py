"""Open recordings for the memory and recovery benchmarks: realistic session starts, and a worker that holds them.

An open recording here is one that has started and is idle: the first callbacks every session sends
(uploader_started, 30, then recorder_started, 40, from processor.simulation's generator), in order, each sid's on
its own partition as the ingest keys them, and nothing after them. The worker then holds each one for the
inactivity timeout (6 h): no tick is due meanwhile.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bench import brokerio, workload
from bench.context import Context
from bench.report import REPO, log
from bench.services import answers, wait_for
from bench.throughput import ROLES
from devenv.kafka import free_port
from devenv.processes import Service
from devenv.topics import TopicSpec
from processor.rawlog import topic_partitions
from processor.settings import ProcessorSettings
from processor.simulation import SessionShape, generate_session, random_shape

#: An open recording's callbacks: uploader_started (30) and recorder_started (40), what every session sends first.
START_CALLBACKS = 2
#: Start callbacks published a second, to each worker filled: below what a worker folds here (~5k/s, and the memory
#: benchmark fills two at once), so it keeps up and buffers little, as when recordings start through the day rather
#: than all at once. A burst left tens of MiB of fetch, stream and cache high-water resident, differing from burst to
#: burst by more than 10,000 idle recordings hold.
FILL_RECORDS_PER_S = 2_000
#: Seconds a worker gets to fold this many records: ~1,000/s on 2 quiet cores, ~350/s seen on 2 loaded ones.
BUDGET_S_PER_RECORD = 1 / 150

_STARTS: dict[tuple[int, int], Starts] = {}


@dataclass(frozen=True, slots=True)
class Starts:
    """The first START_CALLBACKS bodies of each session, session after session, and the body each sends next."""

    sids: list[bytes]
    lines: list[bytes]
    follow_ups: list[bytes]

    def of(self, begin: int, end: int) -> list[bytes]:
        """Return the bodies of sessions begin … end − 1."""
        return self.lines[begin * START_CALLBACKS : end * START_CALLBACKS]


def session_starts(count: int, *, seed: int) -> Starts:
    """Return the starts of `count` simulated sessions (cached: memory and recovery share them in one run).

    The shape (users, mixed or not) is drawn as the simulator draws it; each session is one minute long, which
    changes nothing in its first bodies and makes generating 100,000 of them affordable (~0.3 ms each).
    """
    cached = _STARTS.get((count, seed))
    if cached is not None:
        return cached
    began = time.monotonic()
    rng = random.Random(seed)
    sids, lines, follow_ups = [], [], []
    for index in range(count):
        drawn = random_shape(rng)
        shape = SessionShape(minutes=1, users=drawn.users, mixed=drawn.mixed)
        bodies = generate_session(rng, shape, start_ms=workload.START_MS + index * 10)
        sids.append(str(bodies[0]["payload"]["sid"]).encode())
        lines += [orjson.dumps(body) for body in bodies[:START_CALLBACKS]]
        follow_ups.append(orjson.dumps(bodies[START_CALLBACKS]))
    _STARTS[(count, seed)] = starts = Starts(sids, lines, follow_ups)
    log(f"generated the starts of {count:,} sessions in {time.monotonic() - began:.1f}s")
    return starts


def source_digest() -> str:
    """Return a digest of the worker's sources as they are now (the code a launch runs, edited or not)."""
    digest = hashlib.sha256()
    for path in sorted(path for package in ("processor", "schemas") for path in (REPO / package).rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def worker_settings(ctx: Context, *, store: str, raw_topic: str | None = None) -> ProcessorSettings:
    """Return a fresh worker app's settings: own topics (or this raw one), data dir, loopback web port; INFO logs."""
    app_id = brokerio.unique("held")
    fields: dict[str, Any] = {f"{role}_topic": f"{app_id}-{role}" for role in ("raw", *ROLES)}
    if raw_topic is not None:
        fields["raw_topic"] = raw_topic
    fields |= {
        "bootstrap_servers": ctx.broker,
        "app_id": app_id,
        "partitions": brokerio.PARTITIONS,
        "store": store,
        "data_dir": ctx.workdir / app_id,
        "web_port": free_port(),
        "log_level": "INFO",  # as bench.throughput: WARNING would turn Faust's root logger to DEBUG
    }
    return ProcessorSettings.model_validate(fields)


def changelog_topic(settings: ProcessorSettings) -> str:
    """Return the name Faust gives the recordings table's changelog."""
    return f"{settings.app_id}-recordings-changelog"


async def create_topics(ctx: Context, settings: ProcessorSettings) -> None:
    """Create the worker's topics up front (Faust creates its changelog itself)."""
    specs = [TopicSpec(plan.name, plan.partitions, configs=plan.configs) for plan in settings.topic_specs()]
    await brokerio.create(ctx.broker, *specs)


async def wait_ready(settings: ProcessorSettings, running: Service, *, timeout_s: float) -> float:
    """Wait until the worker's /readyz answers 200; return the seconds it took."""
    url = f"http://127.0.0.1:{settings.web_port}/readyz"
    return await wait_for(
        lambda: answers(url, 200), what="readyz", timeout_s=timeout_s, services=[running], every_s=0.1
    )


async def wait_committed(ctx: Context, settings: ProcessorSettings, running: Service, *, records: int) -> float:
    """Wait until the worker's group has committed its raw and ticks topics to their current ends."""
    ends = {
        topic: await brokerio.end_offsets(ctx.broker, topic) for topic in (settings.raw_topic, settings.ticks_topic)
    }

    async def committed() -> bool:
        return all([await brokerio.caught_up(ctx.broker, settings.app_id, topic, at) for topic, at in ends.items()])

    budget = 60 + records * BUDGET_S_PER_RECORD
    return await wait_for(committed, what="worker commits", timeout_s=budget, services=[running], every_s=0.5)


@dataclass(slots=True)
class Tail:
    """Reads a topic onward from where its previous read stopped, to the topic's end when the read begins."""

    bootstrap_servers: str
    topic: str
    positions: dict[int, int] = field(default_factory=dict)

    async def read(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Return the records written since the previous read (all of them the first time)."""
        tps = await topic_partitions(self.bootstrap_servers, self.topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False)
        await consumer.start()
        records: list[ConsumerRecord[bytes, bytes]] = []
        try:
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, self.positions.get(tp.partition, 0))
            remaining = {tp for tp in tps if self.positions.get(tp.partition, 0) < ends[tp]}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=10_000, max_records=10_000)
                if not batch:
                    raise TimeoutError(f"{self.topic}: no record for 10 s before its end")
                for tp, messages in batch.items():
                    records += [message for message in messages if message.offset < ends[tp]]
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            self.positions = {tp.partition: end for tp, end in ends.items()}
        finally:
            await consumer.stop()
        return records


def latest(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[bytes, bytes | None]:
    """Return each key's last value among these records (in offset order within a partition)."""
    return {record.key: record.value for record in records if record.key is not None}


def unprocessed(sids: Sequence[bytes], states: dict[bytes, bytes | None]) -> list[bytes]:
    """Return the sids whose latest state does not show their last start callback applied."""
    want = START_CALLBACKS - 1
    missing = []
    for sid in sids:
        value = states.get(sid)
        if value is None or orjson.loads(value).get("last_sequence") != want:
            missing.append(sid)
    return missing


def partition_of(sid: bytes, partitions: int) -> int:
    """Return the partition the default partitioner (murmur2, as the ingest's and Faust's producers) gives a sid."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    return int(DefaultPartitioner()(sid, every, every))


async def end_of(bootstrap_servers: str, topic: str, partition: int) -> int:
    """Return one partition's end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def total_records(bootstrap_servers: str, topic: str) -> int:
    """Return how many records a topic holds (end − beginning, summed over partitions)."""
    tps = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends, starts = await consumer.end_offsets(tps), await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return sum(ends[tp] - starts[tp] for tp in tps)


async def publish_starts(ctx: Context, settings: ProcessorSettings, starts: Starts, begin: int, end: int) -> None:
    """Publish the starts of sessions begin … end − 1 to the worker's raw topic, keyed by sid as the ingest does,
    at FILL_RECORDS_PER_S."""
    began = time.monotonic()
    await brokerio.publish(ctx.broker, settings.raw_topic, starts.of(begin, end), per_s=FILL_RECORDS_PER_S)
    log(f"published {(end - begin) * START_CALLBACKS:,} start callbacks in {time.monotonic() - began:.1f}s")


@dataclass(frozen=True, slots=True)
class Held:
    """A worker app (its settings: app id, topics, data dir) whose table holds `recordings` open recordings."""

    settings: ProcessorSettings
    recordings: int


#: (work directory of the run, store) → the app a benchmark filled and stopped cleanly: another may restart it.
_HELD: dict[tuple[str, str], Held] = {}


def remember(ctx: Context, held: Held) -> None:
    """Note an app that holds open recordings and was stopped cleanly (SIGTERM), for a later benchmark of the run."""
    _HELD[(str(ctx.workdir), held.settings.store)] = held


def recall(ctx: Context, store: str, recordings: int) -> Held | None:
    """Return (and forget) an app of this run holding exactly `recordings` open recordings in `store`, if any."""
    held = _HELD.pop((str(ctx.workdir), store), None)
    return held if held is not None and held.recordings == recordings else None


async def fill(
    ctx: Context,
    settings: ProcessorSettings,
    running: Service,
    starts: Starts,
    span: tuple[int, int],
    *,
    states: Tail,
    seen: dict[bytes, bytes | None],
) -> None:
    """Publish the starts of sessions span[0] … span[1] − 1 and wait until the worker has committed them.

    `states` reads the state topic on from its previous read, into `seen` (sid → latest state); raise unless it
    shows both start callbacks applied for every sid of the span.
    """
    begin, end = span
    await publish_starts(ctx, settings, starts, begin, end)
    await wait_committed(ctx, settings, running, records=(end - begin) * START_CALLBACKS)
    seen |= latest(await states.read())
    missing = unprocessed(starts.sids[begin:end], seen)
    assert not missing, f"{len(missing)} sids not processed, e.g. {missing[:3]}"
