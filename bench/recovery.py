"""Recovery benchmark: a worker holding open recordings is killed with SIGKILL and restarted; how long until it serves.

Per store, a worker app holding 100,000 open recordings (the memory benchmark's, stopped cleanly, when it ran
before in the same run; otherwise filled here the same way) is started as a static group member (one
PROCESSOR_GROUP_INSTANCE_ID and one web port, kept for its restart, as a StatefulSet pod keeps its name and
address) and, 5 s after its /readyz first answers 200, killed with SIGKILL. A new worker of the same app (same
group, instance id, web port, changelog and data dir) is launched at once; the group coordinator knows its instance
id, so it takes the killed member's place and partitions without waiting for the dead session or a rebalance. One
new callback (the next one its session sends) for a sid it holds is published right after the launch. The
figures, from the launch: the first 200 of /readyz (polled every 0.1 s), and the first processed event: the
CreateTime of the first state record of that sid showing the new callback applied. Baseline: the same app's
clean start (SIGTERM, then a start) to its first 200. What the restart replays is read from the changelog's size
and the worker's own recovery log lines (records to read per changelog partition, and when reading began and ended);
its /readyz says whether it came back in the same group generation with the same partitions.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import brokerio, population
from bench.context import Context
from bench.population import Held, Starts, Tail
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import membership, python
from bench.throughput import worker_env
from devenv.kafka import free_port
from devenv.processes import Service, service
from processor.settings import ProcessorSettings

STORES = {"memory://": "memory store", "rocksdb://": "RocksDB"}
#: Open recordings the killed worker holds, in a full and in a quick run (the memory benchmark's last level).
RECORDINGS = {"full": 100_000, "quick": 500}
#: How long the first worker runs after it is ready, before it is killed.
RUN_BEFORE_KILL_S = 5.0
#: Seconds a restart gets to answer, and to process the new callback.
READY_BUDGET_S = 240.0
FIRST_EVENT_BUDGET_S = 240.0
#: How long after the restart's first event its ticks are counted (filling the view of 100,000 takes a few seconds).
TICKS_WINDOW_S = 10.0
#: A quick run's session timeout: the broker's floor (group.min.session.timeout.ms).
QUICK_SESSION_TIMEOUT_S = 6.0
#: The target of a RocksDB worker's restart, to ready and to its first processed event (s).
ROCKSDB_LIMIT_S = 5.0
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


@dataclass(frozen=True, slots=True)
class Restart:
    """One store's crash and restart, in seconds from a launch; what the restart had to read."""

    store: str
    recordings: int
    clean_ready_s: float
    ready_s: float
    first_event_s: float
    #: Records in the changelog when the worker was killed (what a memory store replays).
    changelog_records: int
    #: What the restarted worker's log says.
    facts: LogFacts
    #: The static member's instance id, and its (generation, partitions) from /readyz before the kill and after.
    instance_id: str = ""
    before: tuple[int, list[int]] | None = None
    after: tuple[int, list[int]] | None = None
    #: Ticks the restarted worker sent from its launch to TICKS_WINDOW_S after its first event (the local view is
    #: filled from the table, so only the due ones: it used to send one per open recording).
    ticks_after_restart: int | None = None


def run(ctx: Context) -> BenchResult:
    """Crash and restart a worker holding open recordings, memory store then RocksDB."""
    sources = population.source_digest()  # the worker code this run launches
    recordings = RECORDINGS["quick" if ctx.quick else "full"]
    starts = population.session_starts(recordings, seed=ctx.seed)
    held = {store: population.recall(ctx, store, recordings) for store in STORES}
    missing = [store for store, found in held.items() if found is None]
    if missing:

        async def fill_missing() -> list[Held]:
            return list(await asyncio.gather(*(_populate(ctx, store, starts, recordings) for store in missing)))

        held |= dict(zip(missing, asyncio.run(fill_missing()), strict=True))
    runs = []
    for app in held.values():
        assert app is not None
        runs.append(asyncio.run(_crash_and_restart(ctx, app, starts)))
    return _result(runs, refilled=missing, sources=sources)


async def _populate(ctx: Context, store: str, starts: Starts, recordings: int) -> Held:
    """Fill a fresh worker app with open recordings, then stop it cleanly."""
    settings = population.worker_settings(ctx, store=store)
    await population.create_topics(ctx, settings)
    log(f"recovery: filling {STORES[store]} app {settings.app_id} with {recordings:,} open recordings")
    with _worker(ctx, settings, "fill") as running:
        await population.wait_ready(settings, running, timeout_s=90)
        states = Tail(ctx.broker, settings.state_topic)
        await population.fill(ctx, settings, running, starts, (0, recordings), states=states, seen={})
    return Held(settings, recordings)


def _worker(ctx: Context, settings: ProcessorSettings, role: str) -> Any:
    log_file = ctx.workdir / f"{settings.app_id}.{role}.log"
    return service(f"worker ({role})", python("processor", "worker"), worker_env(settings), log_file)


async def _crash_and_restart(ctx: Context, held: Held, starts: Starts) -> Restart:
    # A static member: one instance id and one loopback port for the first start and the restart (faust refuses a
    # static member whose URL changed). The port is fresh for this app: the fill's may be taken meanwhile.
    instance_id = f"{held.settings.app_id}-0"
    update: dict[str, Any] = {"web_port": free_port(), "group_instance_id": instance_id}
    if ctx.quick:  # a smoke run: the broker's floor, not the default 30 s, so that it fits in seconds
        update["session_timeout_s"] = QUICK_SESSION_TIMEOUT_S
    settings = held.settings.model_copy(update=update)
    name = STORES[settings.store]
    launched = time.time()
    with _worker(ctx, settings, "first") as first:
        clean_ready_s = await _ready_since(settings, first, launched)
        run_s = 1.0 if ctx.quick else RUN_BEFORE_KILL_S
        log(f"recovery: {name}: clean start ready in {clean_ready_s:.1f}s; killing it in {run_s:.0f}s")
        await asyncio.sleep(run_s)
        first.check_alive()
        before = await membership(settings.web_port)
        first.process.kill()  # SIGKILL: no commit, no flush (and a static member never leaves the group anyway)
        first.process.wait(timeout=10)
    changelog_records = await population.total_records(ctx.broker, population.changelog_topic(settings))
    sid, follow_up = starts.sids[0], starts.follow_ups[0]
    partition = population.partition_of(sid, settings.partitions)
    since = await population.end_of(ctx.broker, settings.state_topic, partition)
    ticks_before = await population.total_records(ctx.broker, settings.ticks_topic)
    launched = time.time()
    with _worker(ctx, settings, "restart") as restarted:  # the same instance id, port and data dir
        await brokerio.publish(ctx.broker, settings.raw_topic, [follow_up])
        ready_s = await _ready_since(settings, restarted, launched)
        after = await membership(settings.web_port)
        applied_ms = await _applied(ctx, settings, restarted, TopicPartition(settings.state_topic, partition), since)
        first_event_s = applied_ms / 1000 - launched
        await asyncio.sleep(TICKS_WINDOW_S)  # its local view is filled from the table by then
        restarted.check_alive()
        ticks = await population.total_records(ctx.broker, settings.ticks_topic) - ticks_before
        restarted.process.kill()  # measured: no need for a clean stop
    facts = log_facts(restarted.log)
    log(
        f"recovery: {name}: restart ready in {ready_s:.1f}s, first event in {first_event_s:.1f}s; {facts}; "
        f"(generation, partitions) before the kill {before}, after the restart {after}; {ticks} ticks sent by "
        f"{TICKS_WINDOW_S:.0f}s after the first event"
    )
    return Restart(
        settings.store,
        held.recordings,
        clean_ready_s,
        ready_s,
        first_event_s,
        changelog_records,
        facts,
        instance_id,
        before,
        after,
        ticks,
    )


async def _ready_since(settings: ProcessorSettings, running: Service, launched: float) -> float:
    await population.wait_ready(settings, running, timeout_s=READY_BUDGET_S)
    return time.time() - launched


async def _applied(ctx: Context, settings: ProcessorSettings, running: Service, tp: TopicPartition, since: int) -> int:
    """Return the CreateTime (ms) of the first state record of sid … showing its next callback applied."""
    want = population.START_CALLBACKS  # the follow-up's sequence: the starts were 0 … START_CALLBACKS − 1
    consumer = AIOKafkaConsumer(bootstrap_servers=ctx.broker, group_id=None, enable_auto_commit=False)
    await consumer.start()
    began = time.monotonic()
    try:
        consumer.assign([tp])
        consumer.seek(tp, since)
        while time.monotonic() - began < FIRST_EVENT_BUDGET_S:
            running.check_alive()
            for record in (await consumer.getmany(tp, timeout_ms=500, max_records=5_000)).get(tp, []):
                if record.value is not None and orjson.loads(record.value).get("last_sequence") == want:
                    return int(record.timestamp)
    finally:
        await consumer.stop()
    raise TimeoutError(f"the restarted worker did not process the new callback within {FIRST_EVENT_BUDGET_S:.0f}s")


@dataclass(frozen=True, slots=True)
class LogFacts:
    """What a worker's log says of its start: changelog records to read, and how long each phase took (s)."""

    #: From joining the group to having joined it (a dynamic member waits there for the killed one's session to expire;
    #: a static member with the killed one's instance id does not).
    join_s: float | None = None
    replayed: int | None = None
    replay_s: float | None = None


def log_facts(log_file: Path) -> LogFacts:
    """Read a worker's log for the last group join and table recovery (None where it says nothing).

    Faust logs "(Re-)joining group" and "Joined group", then a table of highwaters and one of the offsets reading
    starts at, per changelog partition, then "Restoring state from changelog topics..." and "Done reading from
    changelog topics" (nothing of the two when there is nothing to read).
    """
    highwater: dict[int, int] = {}
    start: dict[int, int] = {}
    table: dict[int, int] | None = None
    stamps: dict[str, float | None] = {}
    for line in log_file.read_text(errors="replace").splitlines():
        if line.startswith("|") and table is not None:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[1].isdigit() and cells[2].lstrip("-").isdigit():
                table[int(cells[1])] = int(cells[2])
            continue
        if line.startswith("+"):
            table = (
                highwater if "Highwater - Active" in line else start if "Reading Starts At - Active" in line else table
            )
            continue
        table = None
        for mark in (
            "(Re-)joining group",
            "Joined group",
            "Restoring state from changelog",
            "Done reading from changelog",
        ):
            if mark in line:
                stamps[mark] = _stamp(line)
    replayed = sum(max(0, highwater[p] - start.get(p, -1)) for p in highwater) if highwater else None
    return LogFacts(
        _between(stamps, "(Re-)joining group", "Joined group"),
        replayed,
        _between(stamps, "Restoring state from changelog", "Done reading from changelog"),
    )


def _between(stamps: dict[str, float | None], first: str, last: str) -> float | None:
    began, ended = stamps.get(first), stamps.get(last)
    return ended - began if began is not None and ended is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def _stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _result(runs: list[Restart], *, refilled: list[str], sources: str) -> BenchResult:
    comparisons = []
    for restart in runs:
        short = "memory_store" if restart.store == "memory://" else "rocksdb"
        # A static member's RocksDB restart resumes from its own files: about a clean start, under 5 s. A memory
        # store replays its changelog, so it has no such bound.
        limit = ROCKSDB_LIMIT_S if restart.store == "rocksdb://" else None
        clean = Figure("clean start (SIGTERM, start) → /readyz 200", restart.clean_ready_s, "s")
        comparisons += [
            Comparison(
                f"{short}_restart_ready",
                Figure(f"{STORES[restart.store]}: SIGKILL, restart → /readyz 200", restart.ready_s, "s"),
                clean,
                higher_is_better=False,
                limit=limit,
            ),
            Comparison(
                f"{short}_restart_first_event",
                Figure(f"{STORES[restart.store]}: restart → first processed event", restart.first_event_s, "s"),
                clean,
                higher_is_better=False,
                limit=limit,
            ),
        ]
    return BenchResult(
        name="recovery",
        title=(
            "SIGKILL and restart of a static worker holding open recordings: until ready, until its first processed "
            "event"
        ),
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=comparisons,
        notes=_notes(runs, refilled),
        details={
            "runs": [_run_json(restart) for restart in runs],
            "filled_here": refilled,
            "worker_sources": sources,
        },
    )


def _notes(runs: list[Restart], refilled: list[str]) -> list[str]:
    notes = []
    for restart in runs:
        facts = restart.facts
        rate = facts.replayed / facts.replay_s if facts.replayed and facts.replay_s else 0.0
        read = (
            f"read {facts.replayed:,} of them in {facts.replay_s:.1f}s ({rate:,.0f} records/s)"
            if rate and facts.replay_s
            else f"read {facts.replayed or 0:,} of them (its log shows no reading phase)"
        )
        join = f"{facts.join_s:.1f}s" if facts.join_s is not None else "an unknown time"
        same = restart.before is not None and restart.before == restart.after
        kept = (
            f"same generation {restart.after[0]} and partitions {restart.after[1]} as before the kill: no rebalance"
            if same and restart.after is not None
            else f"(generation, partitions) {restart.before} before the kill, {restart.after} after"
        )
        notes.append(
            f"{STORES[restart.store]}, {restart.recordings:,} open recordings: the changelog held "
            f"{restart.changelog_records:,} records at the kill; the restarted static member took {join} to rejoin "
            f"the group ({kept}), then {read}."
        )
    if refilled:
        notes.append(f"Filled here (the memory benchmark did not run before): {', '.join(refilled)}.")
    return notes


def _run_json(restart: Restart) -> dict[str, Any]:
    return {
        "store": restart.store,
        "recordings": restart.recordings,
        "clean_start_ready_s": round(restart.clean_ready_s, 2),
        "restart_ready_s": round(restart.ready_s, 2),
        "restart_first_event_s": round(restart.first_event_s, 2),
        "changelog_records_at_kill": restart.changelog_records,
        "group_join_s": _round(restart.facts.join_s),
        "replayed_records": restart.facts.replayed,
        "replay_s": _round(restart.facts.replay_s),
        "group_instance_id": restart.instance_id,
        "generation_before_kill": restart.before[0] if restart.before else None,
        "generation_after_restart": restart.after[0] if restart.after else None,
        "partitions_before_kill": restart.before[1] if restart.before else None,
        "partitions_after_restart": restart.after[1] if restart.after else None,
        "ticks_after_restart": restart.ticks_after_restart,
    }
