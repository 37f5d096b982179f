"""Rebuild benchmark: `replay --topic` (the raw topic through the core) vs a bare loop that only consumes and parses it.

Both run in this process over the same raw topic, from its beginning to its end, reading it the same way
(every partition assigned, no group, batches of 1,000); each is timed from its start (topic lookup, consumer
start) to its last record, in alternating rounds, best round kept. The replay runs with the garbage collector as
its command sets it (`processor.collector`); the bare loop keeps nothing it reads, so it is left as it is.
"""

from __future__ import annotations

import asyncio
import io
import time

import orjson
from aiokafka import AIOKafkaConsumer

from bench.context import Context
from bench.report import BenchResult, Comparison, Figure, log
from processor import collector
from processor.core.reorder import ReorderPolicy
from processor.rawlog import topic_partitions
from processor.replay import Replayer, replay_topic


async def replay_seconds(bootstrap_servers: str, topic: str) -> tuple[float, int]:
    """Time `python -m processor replay --topic T --summary`'s work; return (seconds, records read)."""
    broken = io.StringIO()
    replayer = Replayer(policy=ReorderPolicy(), on_derived=None, on_broken=broken)
    with collector.settled():  # as the command runs it
        started = time.perf_counter()
        fold, report = await replay_topic(bootstrap_servers, topic, replayer)
        summary = [state.model_dump_json() for state in fold.snapshots()]
        elapsed = time.perf_counter() - started
    assert summary, "the replay folded no recording"
    assert not report.broken, broken.getvalue()
    return elapsed, report.lines


async def bare_seconds(bootstrap_servers: str, topic: str) -> tuple[float, int]:
    """Time a bare read of the topic to its end, `orjson.loads` of each record; return (seconds, records)."""
    started = time.perf_counter()
    tps = await topic_partitions(bootstrap_servers, topic)
    # As `processor.rawlog.read_topic` reads (its comment says why "earliest").
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    count = 0
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp, start in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, start)
        remaining = {tp for tp in tps if ends[tp]}
        while remaining:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=10_000, max_records=1_000)).items():
                for message in messages:
                    orjson.loads(message.value)
                    count += 1
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return time.perf_counter() - started, count


def run(ctx: Context) -> BenchResult:
    """Alternate bare read and replay over the run's raw topic; compare their best records/s."""
    raw = ctx.raw_topic()
    best = {"replay": 0.0, "bare": 0.0}
    rounds = ctx.size(full=5, quick=1)
    for _ in range(rounds):
        for name, timed in (("bare", bare_seconds), ("replay", replay_seconds)):
            seconds, records = asyncio.run(timed(ctx.broker, raw.name))
            assert records == raw.records, (name, records, raw.records)
            log(f"rebuild: {name} {records / seconds:,.0f} records/s")
            best[name] = max(best[name], records / seconds)
    return BenchResult(
        name="rebuild",
        title="rebuilding state from the raw topic (`replay --topic`) vs consuming and parsing it",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=[
            Comparison(
                "replay_vs_bare_read",
                Figure("replay --topic", best["replay"], "records/s"),
                Figure("bare read + orjson", best["bare"], "records/s"),
                target=0.5,
            )
        ],
        notes=[f"{raw.records:,} records of {raw.workload.recordings:,} recordings; best of {rounds} round(s)."],
        details={"records": raw.records, "rounds": rounds},
    )
