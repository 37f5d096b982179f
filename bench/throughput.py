"""Processor benchmark: events/s through the live worker vs a straightforward Faust worker (the peer a user would
write: bench/straightforward_agent.py), a decode-only Faust agent and a bare aiokafka loop.

All four read the same pre-published raw topic from its beginning, each as its own subprocess on a fresh
consumer group. Each one's throughput is (records − 1) ÷ (when it handled the last record − when it handled the
first), so start-up (imports, group join, assignment, first fetch) and the final commit are outside the window:
- the worker: its output records' CreateTime (set by its producer as each record is queued). The first is its
  first derived event or snapshot, whichever came first (a batch's derived events are queued record by record,
  its snapshots once per sid at the batch's end); the last is the earliest state record from which every sid's
  state equals the replay of the same records, checked;
- the baselines: their own clock at the first and the last record (the straightforward worker's final states are
  checked against the replay as the worker's are).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench import brokerio, workload
from bench.context import Context, RawTopic
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import python, wait_for
from devenv.kafka import free_port
from devenv.processes import service
from devenv.topics import TopicSpec
from processor.core.fold import RetentionPolicy, Tracked
from processor.pipeline import Batch, Pipeline, trim
from processor.settings import ProcessorSettings, worker_environment

ROLES = ("ticks", "events", "state", "alerts", "dlq")
LABELS = {
    "worker_memory": "worker (memory store)",
    "worker_rocksdb": "worker (RocksDB store)",
    "decode_agent": "decode-only Faust agent",
    "straightforward_agent": "straightforward Faust worker",
    "bare_loop": "bare aiokafka loop",
}


@dataclass(frozen=True, slots=True)
class Measured:
    """One subject's run: records handled, the first-to-last window, and launch → first record."""

    records: int
    window_s: float
    startup_s: float
    #: Records written per input record, by topic role (the worker only).
    outputs: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Return records per second inside the window."""
        return (self.records - 1) / self.window_s


def run(ctx: Context) -> BenchResult:
    """Run the baselines and the worker (memory store; also RocksDB in a full run) over the same raw topic."""
    raw = ctx.raw_topic()
    expected = workload.final_states(raw.workload.lines)
    runs = {"bare_loop": bare_loop(ctx, raw), "decode_agent": decode_agent(ctx, raw)}
    runs["straightforward_agent"] = straightforward_agent(ctx, raw, expected)
    runs["worker_memory"] = worker(ctx, raw, expected, store="memory://")
    if not ctx.quick:
        runs["worker_rocksdb"] = worker(ctx, raw, expected, store="rocksdb://")
    alone = pipeline_alone(raw.workload.lines)
    return _result(raw, runs, alone)


def bare_loop(ctx: Context, raw: RawTopic) -> Measured:
    """Run bench.bare_loop over the raw topic to a fresh output topic."""
    out = brokerio.unique("bare-out")
    asyncio.run(brokerio.create(ctx.broker, TopicSpec(out, brokerio.PARTITIONS)))
    report = ctx.workdir / f"{out}.json"
    argv = python("bench.bare_loop", "--bootstrap-servers", ctx.broker, "--topic", raw.name, "--out", out)
    argv += ["--group", brokerio.unique("bare"), "--records", str(raw.records), "--report", str(report)]
    return _self_reporting(ctx, "bare loop", argv, report, raw.records)


def decode_agent(ctx: Context, raw: RawTopic) -> Measured:
    """Run bench.decode_agent over the raw topic."""
    app_id = brokerio.unique("decode")
    report = ctx.workdir / f"{app_id}.json"
    argv = python("bench.decode_agent", "--bootstrap-servers", ctx.broker, "--topic", raw.name, "--app-id", app_id)
    argv += ["--partitions", str(brokerio.PARTITIONS), "--data-dir", str(ctx.workdir / app_id)]
    argv += ["--web-port", str(free_port()), "--records", str(raw.records), "--report", str(report)]
    return _self_reporting(ctx, "decode agent", argv, report, raw.records)


def straightforward_agent(ctx: Context, raw: RawTopic, expected: dict[str, Any]) -> Measured:
    """Run bench.straightforward_agent over the raw topic; check that it ends in the replay's states too."""
    app_id = brokerio.unique("straightforward")
    outputs = [TopicSpec(f"{app_id}-{role}", brokerio.PARTITIONS) for role in ("events", "state", "alerts", "dlq")]
    asyncio.run(brokerio.create(ctx.broker, *outputs))
    report = ctx.workdir / f"{app_id}.json"
    argv = python("bench.straightforward_agent", "--bootstrap-servers", ctx.broker, "--topic", raw.name)
    argv += ["--out-prefix", app_id, "--app-id", app_id, "--partitions", str(brokerio.PARTITIONS)]
    argv += ["--data-dir", str(ctx.workdir / app_id), "--web-port", str(free_port())]
    argv += ["--records", str(raw.records), "--report", str(report)]
    measured = _self_reporting(ctx, "straightforward faust worker", argv, report, raw.records)
    states = asyncio.run(brokerio.read_to_end(ctx.broker, f"{app_id}-state"))
    state_window(states, expected)  # raises unless every sid ends in the replay's state: a fair peer
    return measured


def _self_reporting(ctx: Context, name: str, argv: list[str], report: Path, records: int) -> Measured:
    log(f"processor: {name} over {records} records")
    launched = time.time()
    with service(name, argv, dict(os.environ), report.with_suffix(".log")) as running:

        async def reported() -> bool:
            return await asyncio.to_thread(report.exists)

        asyncio.run(wait_for(reported, what=name, timeout_s=_budget_s(records), services=[running], every_s=0.1))
    done = json.loads(report.read_text())
    assert done["records"] == records
    return Measured(records, done["last_s"] - done["first_s"], done["first_s"] - launched)


def worker(ctx: Context, raw: RawTopic, expected: dict[str, Any], *, store: str) -> Measured:
    """Run `python -m processor worker` over the raw topic until its group has committed the raw topic's end."""
    settings = _settings(ctx, raw, store)
    specs = [TopicSpec(plan.name, plan.partitions, configs=plan.configs) for plan in settings.topic_specs()]
    asyncio.run(brokerio.create(ctx.broker, *specs[1:]))  # the raw topic exists
    ends = asyncio.run(brokerio.end_offsets(ctx.broker, raw.name))
    log(f"processor: worker ({store}) over {raw.records} records")
    launched = time.time()
    log_file = ctx.workdir / f"{settings.app_id}.log"
    with service("worker", python("processor", "worker"), worker_env(settings), log_file) as running:

        async def committed_to_end() -> bool:
            return await brokerio.caught_up(ctx.broker, settings.app_id, raw.name, ends)

        asyncio.run(wait_for(committed_to_end, what="worker", timeout_s=_budget_s(raw.records), services=[running]))
    states = asyncio.run(brokerio.read_to_end(ctx.broker, settings.state_topic))
    first_ms, last_ms = state_window(states, expected)
    events = asyncio.run(brokerio.read_to_end(ctx.broker, settings.events_topic))
    first_ms = min([first_ms, *(record.timestamp for record in events)])
    outputs = asyncio.run(_written(ctx, settings))
    return Measured(raw.records, (last_ms - first_ms) / 1000, first_ms / 1000 - launched, outputs)


async def _written(ctx: Context, settings: ProcessorSettings) -> dict[str, float]:
    """Return records written per raw record, per output topic (and the table's changelog, named by Faust)."""
    topics = {role: getattr(settings, f"{role}_topic") for role in ("events", "state", "alerts", "ticks")}
    topics["changelog"] = f"{settings.app_id}-recordings-changelog"
    raw = sum((await brokerio.end_offsets(ctx.broker, settings.raw_topic)).values())
    return {
        role: round(sum((await brokerio.end_offsets(ctx.broker, name)).values()) / raw, 3)
        for role, name in topics.items()
    }


def worker_env(settings: ProcessorSettings) -> dict[str, str]:
    """Return this process's environment with the worker's PROCESSOR_* variables replaced by these settings."""
    return worker_environment(settings, os.environ)


def _settings(ctx: Context, raw: RawTopic, store: str) -> ProcessorSettings:
    app_id = brokerio.unique("worker")
    names: dict[str, Any] = {f"{role}_topic": f"{app_id}-{role}" for role in ROLES}
    return ProcessorSettings(
        bootstrap_servers=ctx.broker,
        app_id=app_id,
        raw_topic=raw.name,
        partitions=brokerio.PARTITIONS,
        store=store,
        data_dir=ctx.workdir / app_id,
        web_port=free_port(),
        # The default: at WARNING or above Faust's worker sets the root logger to DEBUG (for its terminal
        # spinner), and every debug call of Faust and aiokafka then builds a record (~5 % of the worker's CPU).
        log_level="INFO",
        **names,
    )


def state_window(states: list[ConsumerRecord[bytes, bytes]], expected: dict[str, Any]) -> tuple[int, int]:
    """Return (first state record's time, earliest time from which every sid's state is the expected one), in ms.

    A sid's records are in its partition's order; its final run of expected values is found from the end.
    """
    by_sid: dict[str, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
    for record in states:
        if record.key is not None:
            by_sid[record.key.decode()].append(record)
    reached = []
    for sid, want in expected.items():
        since = None
        for record in reversed(by_sid.get(sid, [])):
            if record.value is None or json.loads(record.value) != want:
                break
            since = record.timestamp
        if since is None:
            raise AssertionError(f"the worker's state of {sid} is not the replay's: the figure would mean nothing")
        reached.append(since)
    return min(record.timestamp for record in states), max(reached)


def pipeline_alone(lines: list[bytes]) -> float:
    """Return records/s of the worker's logic in-process, as the worker runs it: no Kafka, no Faust.

    The records go through `processor.pipeline.Batch` in batches of the worker's size (PROCESSOR_BATCH_MAX_RECORDS),
    against a cache of live recordings kept between batches and a dict for the table; each batch ends with its
    writes (one table value and snapshot per changed sid) and a trim of the cache, as the agent's batches do.
    """
    settings = ProcessorSettings()
    size = settings.batch_max_records
    pipeline = Pipeline(settings.reorder_policy, RetentionPolicy())
    table: dict[bytes, bytes] = {}
    cache: dict[bytes, Tracked] = {}
    keys = [workload.sid_of(line) for line in lines]
    started = time.perf_counter()
    for first in range(0, len(lines), size):
        batch = Batch(pipeline, cache, table.get)
        for offset in range(first, min(first + size, len(lines))):
            result = batch.callback(
                keys[offset], lines[offset], [], now_ms=time.time_ns() // 1_000_000, position=(0, offset)
            )
            for out in result.outgoing:
                len(out.value or b"")  # the agent hands these to the producer
        for write in batch.writes():
            if write.stored is None:
                table.pop(write.key, None)
            else:
                table[write.key] = write.stored
            len(write.state.value or b"")
        idle_since_ms = time.time_ns() // 1_000_000 - settings.state_cache_idle_ms
        trim(cache, settings.state_cache_recordings, idle_since_ms=idle_since_ms)
    return len(lines) / (time.perf_counter() - started)


def _budget_s(records: int) -> float:
    return 60 + records / 300


def _result(raw: RawTopic, runs: dict[str, Measured], alone: float) -> BenchResult:
    speed = {name: Figure(LABELS[name], measured.per_second, "events/s") for name, measured in runs.items()}
    comparisons = [
        Comparison(
            "worker_vs_straightforward_agent", speed["worker_memory"], speed["straightforward_agent"], target=2.0
        ),
        Comparison("worker_vs_decode_agent", speed["worker_memory"], speed["decode_agent"], target=0.6),
        Comparison("worker_vs_bare_loop", speed["worker_memory"], speed["bare_loop"]),
        Comparison("decode_agent_vs_bare_loop", speed["decode_agent"], speed["bare_loop"]),
    ]
    if "worker_rocksdb" in speed:
        rocksdb = Comparison(
            "rocksdb_worker_vs_decode_agent", speed["worker_rocksdb"], speed["decode_agent"], target=0.6
        )
        comparisons.insert(1, rocksdb)
    rate = raw.workload.per_recording_rate()
    capacity = speed["worker_memory"].value / rate
    runs_json = {
        name: {"window_s": round(m.window_s, 3), "startup_s": round(m.startup_s, 2), "outputs_per_input": m.outputs}
        for name, m in runs.items()
    }
    return BenchResult(
        name="processor",
        title="events/s through the live worker (reorder + fold + table + derived topics) vs its ceilings",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=comparisons,
        notes=_notes(raw, runs["worker_memory"], rate=rate, alone=alone),
        details={
            "records": raw.records,
            "recordings": raw.workload.recordings,
            "deliveries_per_recording_second": round(rate, 4),
            "concurrent_recordings_per_worker": round(capacity),
            "pipeline_alone_per_second": round(alone),
            "runs": runs_json,
        },
    )


def _notes(raw: RawTopic, worker: Measured, *, rate: float, alone: float) -> list[str]:
    written = ", ".join(f"{role} {share:g}" for role, share in worker.outputs.items())
    return [
        f"{raw.records:,} deliveries of {raw.workload.recordings:,} simulated recordings (3 s jitter, 20 % "
        f"resends, none lost), {brokerio.PARTITIONS} partitions, one worker, default settings.",
        f"Capacity: the simulated recordings send {rate:.3f} deliveries per recording per second of session time "
        f"(resends included), so one worker at {worker.per_second:,.0f} events/s serves about "
        f"{worker.per_second / rate:,.0f} concurrent recordings. The simulated sessions last 1-7 minutes, so their "
        "start and stop bursts weigh more than in real, longer recordings: the real capacity is higher.",
        f"The worker's logic alone (processor.pipeline's batches in-process, no Kafka, no Faust) runs at "
        f"{alone:,.0f} records/s: {1e6 / alone:.0f} µs of the worker's {1e6 / worker.per_second:.0f} µs per record. "
        f"Records the worker writes per input: {written}.",
    ]
