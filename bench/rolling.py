"""Rolling restart benchmark: two static workers restarted one at a time under steady load through a real ingest.

Two workers of one app (RocksDB, one standby replica each: the default) are static group members, each with its own
PROCESSOR_GROUP_INSTANCE_ID, web port and data dir, kept across its restarts as a StatefulSet pod keeps its name and
address. Signed simulated recordings (whole recordings, in order, 20 % resent) are posted through one ingest at 200
per second, open loop (a recording's next delivery waits for its previous answer, as NCS does). After a warm-up and
a steady phase, the roll: worker 0 is stopped as Kubernetes stops a pod (SIGTERM, then SIGKILL if it is still
running after the grace period: the StatefulSet's 60 s, 5 s in a quick run), restarted with the same id and port and
waited for until its /readyz answers 200; then worker 1 the same way; then worker 0 is killed with SIGKILL and
restarted the same way. The load goes on through the roll and a few seconds after it.

A callback's pause is the time from the client's receipt of the ingest's 200 for it to the broker's append (the
events topic uses LogAppendTime) of the first derived event it caused, matched by sid, uid and sequence as the
latency benchmark does; a resend and a callback that derives nothing are not matched. The longest pause is the
largest over the callbacks answered during the roll (from 1 s before the first signal, as one answered just before it
may wait for the stopping worker, to the end of the load, so the catch-up after the last restart counts too); the
roll's p99 is over the same callbacks; baselines: the same over the steady phase before the roll. At the end, once
the group has committed the raw topic to its end, every sid's last snapshot on the state topic must equal a replay
of the deliveries the ingest acknowledged, and no derived event id may have been sent with two contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import brokerio, latency, population, workload
from bench.context import Context
from bench.ingest_wrk import SECRET, ingest_env
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import answers, membership, python, wait_for
from bench.throughput import ROLES
from devenv.kafka import free_port
from devenv.processes import Service, service
from devenv.topics import TopicSpec
from ingest.signature import sign
from processor.settings import ProcessorSettings, worker_environment

RATE = latency.RATE
WORKERS = 2
#: The roll: which worker, and the signal that stops it (SIGTERM as Kubernetes sends, then a crash).
STEPS = ((0, signal.SIGTERM), (1, signal.SIGTERM), (0, signal.SIGKILL))
#: Seconds of load before the steady phase (not measured), and after the roll.
WARM_UP_S = {"full": 3, "quick": 1}
STEADY_S = {"full": 15, "quick": 3}
TAIL_S = {"full": 5, "quick": 2}
#: A SIGTERMed worker gets this long to stop before it is killed (SIGKILL), as Kubernetes does: in a full run the
#: StatefulSet's terminationGracePeriodSeconds (deploy/k8s/base/processor/statefulset.yaml), shorter in a smoke run.
GRACE_S = {"full": 60, "quick": 5}
#: The most seconds the roll may take: deliveries are generated for this long, and posting stops once they run out.
ROLL_BUDGET_S = 3 * GRACE_S["full"]
#: A restarted worker gets this long to answer /readyz 200.
READY_BUDGET_S = 60
#: The roll's callbacks begin this long before its first signal: one answered just before it may wait for the worker.
ROLL_MARGIN_S = 1.0
#: The target: no sid waits longer than this for a callback's derived event.
PAUSE_LIMIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Step:
    """One worker stopped and restarted: wall-clock times, and /readyz's (generation, partitions) once it is back."""

    worker: int
    signal: str
    signalled: float
    exited: float
    #: Whether it was still running at the end of its grace period, and killed then.
    killed_after_grace: bool
    ready: float
    membership: tuple[int, list[int]] | None


@dataclass(slots=True)
class Members:
    """The two static workers: their settings, and the current process of each."""

    settings: list[ProcessorSettings]
    running: list[Service]
    stack: contextlib.ExitStack
    launches: int = 0

    def launch(self, ctx: Context, index: int) -> None:
        """Start worker `index` (again): the same settings, so the same instance id, port and data dir."""
        self.launches += 1
        log_file = ctx.workdir / f"{self.settings[index].group_instance_id}.{self.launches}.log"
        argv = python("processor", "worker")
        env = worker_environment(self.settings[index], os.environ)
        self.running[index] = self.stack.enter_context(service(f"worker {index}", argv, env, log_file))


def run(ctx: Context) -> BenchResult:
    """Roll two static workers under load; measure the pauses and check the outcome against a replay."""
    size = "quick" if ctx.quick else "full"
    seconds = WARM_UP_S[size] + STEADY_S[size] + ROLL_BUDGET_S + TAIL_S[size]
    lines = workload.build(RATE * seconds, seed=ctx.seed, max_delay_ms=0, duplicate_rate=0.2).lines
    return asyncio.run(_measure(ctx, lines, size))


def _settings(ctx: Context) -> list[ProcessorSettings]:
    app_id = brokerio.unique("rolling")
    names: dict[str, Any] = {f"{role}_topic": f"{app_id}-{role}" for role in ("raw", *ROLES)}
    shared = ProcessorSettings(
        bootstrap_servers=ctx.broker,
        app_id=app_id,
        partitions=brokerio.PARTITIONS,
        store="rocksdb://",
        log_level="INFO",  # as bench.throughput: WARNING would turn Faust's root logger to DEBUG
        **names,
    )
    return [
        shared.model_copy(
            update={
                "group_instance_id": f"{app_id}-{index}",
                "web_port": free_port(),
                "data_dir": ctx.workdir / f"{app_id}-{index}",
            }
        )
        for index in range(WORKERS)
    ]


async def _measure(ctx: Context, lines: list[bytes], size: str) -> BenchResult:
    settings = _settings(ctx)
    first = settings[0]
    specs = [TopicSpec(plan.name, plan.partitions, configs=plan.configs) for plan in first.topic_specs()]
    specs[2] = TopicSpec(first.events_topic, first.partitions, configs=dict(brokerio.LOG_APPEND_TIME))
    await brokerio.create(ctx.broker, *specs)
    port = free_port()
    answered: list[float] = [0.0] * len(lines)
    stop_posting = asyncio.Event()
    with contextlib.ExitStack() as stack:
        ingest = stack.enter_context(
            service("ingest", python("ingest"), ingest_env(ctx.broker, first.raw_topic, port), ctx.workdir / "ri.log")
        )
        members = Members(settings, [ingest] * WORKERS, stack)  # placeholders until each worker is launched
        for index in range(WORKERS):
            members.launch(ctx, index)
        everyone = [ingest, *members.running]
        await wait_for(
            lambda: answers(f"http://127.0.0.1:{port}/readyz", 200), what="ingest", timeout_s=30, services=everyone
        )
        for index in range(WORKERS):
            await population.wait_ready(settings[index], members.running[index], timeout_s=READY_BUDGET_S)
        await _settled(settings, members)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            url = f"http://127.0.0.1:{port}/v1/callbacks/agora"

            async def post(index: int, line: bytes) -> None:
                headers = {"Content-Type": "application/json", "Agora-Signature-V2": sign(line, SECRET)}
                async with session.post(url, data=line, headers=headers) as response:
                    answered[index] = time.time()
                    assert response.status == 200, await response.text()

            log(f"rolling: posting at {RATE}/s through the ingest to two static workers")
            posting = asyncio.create_task(_post_until(lines, post, stop_posting))
            began = time.time()
            await asyncio.sleep(WARM_UP_S[size] + STEADY_S[size])
            steps = [await _restart(ctx, members, index, signum, GRACE_S[size]) for index, signum in STEPS]
            await asyncio.sleep(TAIL_S[size])
            stop_posting.set()
            posted = await posting
        await _drained(ctx, first, [ingest, *members.running])
    log(f"rolling: {posted} deliveries posted; checking the outcome")
    events = await brokerio.read_to_end(ctx.broker, first.events_topic)
    checks = await _checks(ctx, first, lines[:posted], events)
    pauses = latency.matched(lines[:posted], answered[:posted], events)
    return _result(lines[:posted], answered, pauses, steps, began + WARM_UP_S[size], checks)


async def _post_until(lines: list[bytes], send: Callable[[int, bytes], Awaitable[None]], stop: asyncio.Event) -> int:
    """Start `send(index, line)` at RATE per second until `stop` is set (or the lines run out); return how many."""
    started = await latency.at_rate(lines, send, stop=stop)
    if started == len(lines):
        log("rolling: the deliveries ran out before the roll ended")
    return started


async def _settled(settings: list[ProcessorSettings], members: Members) -> tuple[int, list[list[int]]]:
    """Wait until both workers answer one generation and own every raw partition between them (bounded)."""
    async with asyncio.timeout(READY_BUDGET_S):
        while True:
            for running in members.running:
                running.check_alive()
            seen = [await membership(one.web_port) for one in settings]
            owned = sorted(p for answer in seen if answer is not None for p in answer[1])
            generations = {answer[0] for answer in seen if answer is not None}
            if None not in seen and len(generations) == 1 and owned == list(range(settings[0].partitions)):
                return generations.pop(), [answer[1] for answer in seen if answer is not None]
            await asyncio.sleep(0.2)


async def _restart(ctx: Context, members: Members, index: int, signum: signal.Signals, grace_s: float) -> Step:
    """Stop worker `index` with `signum` (SIGKILL after `grace_s`), start it again the same, wait for /readyz 200."""
    process = members.running[index].process
    signalled = time.time()
    process.send_signal(signum)
    try:
        await asyncio.to_thread(process.wait, grace_s)
        forced = False
    except subprocess.TimeoutExpired:  # what Kubernetes does at the end of the grace period
        process.kill()
        await asyncio.to_thread(process.wait, 10)
        forced = True
    exited = time.time()
    members.launch(ctx, index)
    await population.wait_ready(members.settings[index], members.running[index], timeout_s=READY_BUDGET_S)
    ready = time.time()
    back = await membership(members.settings[index].web_port)
    log(
        f"rolling: worker {index} {signum.name}: exited in {exited - signalled:.1f}s"
        f"{' (killed at the end of its grace period)' if forced else ''}, ready {ready - exited:.1f}s after its "
        f"restart; (generation, partitions) {back}"
    )
    return Step(index, signum.name, signalled, exited, forced, ready, back)


async def _drained(ctx: Context, settings: ProcessorSettings, services: list[Service]) -> None:
    ends = await brokerio.end_offsets(ctx.broker, settings.raw_topic)

    async def done() -> bool:
        return await brokerio.caught_up(ctx.broker, settings.app_id, settings.raw_topic, ends)

    await wait_for(done, what="the group to commit the raw topic's end", timeout_s=90, services=services, every_s=0.5)


async def _checks(ctx: Context, settings: ProcessorSettings, acked: list[bytes], events: list[Any]) -> dict[str, Any]:
    """Check the state topic against a replay of what the ingest acknowledged, and the events' ids; return counts."""
    states = population.latest(await brokerio.read_to_end(ctx.broker, settings.state_topic))
    live = {sid.decode(): json.loads(value) if value is not None else None for sid, value in states.items()}
    expected = workload.final_states(acked)
    differing = sorted(sid for sid in expected.keys() | live.keys() if live.get(sid) != expected.get(sid))
    assert not differing, (
        f"{len(differing)} sids differ from the replay of what the ingest acknowledged: {differing[:3]}"
    )
    contents: dict[str, set[bytes]] = defaultdict(set)
    for record in events:
        contents[json.loads(record.value)["event_id"]].add(record.value)
    changed = [event_id for event_id, seen in contents.items() if len(seen) > 1]
    assert not changed, f"{len(changed)} event ids sent with two contents, e.g. {changed[:3]}"
    return {
        "sids_equal_to_replay": len(expected),
        "derived_events": len(events),
        "distinct_event_ids": len(contents),
        "event_ids_with_two_contents": 0,
    }


def _result(
    lines: list[bytes],
    answered: list[float],
    pauses: dict[int, float],
    steps: list[Step],
    steady_from: float,
    checks: dict[str, Any],
) -> BenchResult:
    roll = (steps[0].signalled, steps[-1].ready)
    since = roll[0] - ROLL_MARGIN_S
    steady = {i: ms for i, ms in pauses.items() if steady_from <= answered[i] < since}
    rolled = {i: ms for i, ms in pauses.items() if since <= answered[i]}  # the tail's catch-up included
    assert steady, "no callback matched in the steady phase"
    assert rolled, "no callback matched during the roll"

    def figure(values: dict[int, float], label: str, *, share: float | None = None) -> Figure:
        if share is None:
            return Figure(label, max(values.values()) / 1000, "s")
        return Figure(label, latency.percentile(list(values.values()), share), "ms")

    return BenchResult(
        name="rolling",
        title=f"rolling restart of two static workers at {RATE} callbacks/s: pauses, e2e p99 during the roll",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=[
            Comparison(
                "rolling_longest_pause",
                figure(rolled, "longest pause of a callback during the roll"),
                figure(steady, "longest in the steady phase before it"),
                higher_is_better=False,
                limit=PAUSE_LIMIT_S,
            ),
            Comparison(
                "rolling_p99_vs_steady",
                figure(rolled, "e2e p99 during the roll", share=0.99),
                figure(steady, "steady-state e2e p99 before it", share=0.99),
                higher_is_better=False,
            ),
        ],
        notes=_notes(steps),
        details={
            "posted": len(lines),
            "roll_s": round(roll[1] - roll[0], 2),
            "steps": [_step_json(step, pauses, answered) for step in steps],
            "steady": _shape(steady),
            "roll": _shape(rolled),
            "longest_waits_by_sid_s": _by_sid(lines, rolled),
            "checks": checks,
        },
    )


def _step_json(step: Step, pauses: dict[int, float], answered: list[float]) -> dict[str, Any]:
    during = [ms for i, ms in pauses.items() if step.signalled <= answered[i] <= step.ready]
    return {
        "worker": step.worker,
        "signal": step.signal,
        "stop_s": round(step.exited - step.signalled, 2),
        "killed_after_grace": step.killed_after_grace,
        "ready_after_restart_s": round(step.ready - step.exited, 2),
        "down_s": round(step.ready - step.signalled, 2),
        "longest_pause_s": round(max(during) / 1000, 3) if during else None,
        "generation_after": step.membership[0] if step.membership else None,
        "partitions_after": step.membership[1] if step.membership else None,
    }


def _shape(pauses: dict[int, float]) -> dict[str, Any]:
    values = list(pauses.values())
    return {
        "matched": len(values),
        **{f"p{round(share * 100)}_ms": round(latency.percentile(values, share), 2) for share in (0.5, 0.9, 0.99)},
        "max_ms": round(max(values), 2),
        "over_1_s": sum(value > 1000 for value in values),
    }


def _by_sid(lines: list[bytes], pauses: dict[int, float]) -> dict[str, float]:
    longest: dict[str, float] = {}
    for index, ms in pauses.items():
        sid = workload.sid_of(lines[index]).decode()
        longest[sid] = max(longest.get(sid, 0.0), ms)
    top = sorted(longest.items(), key=lambda item: item[1], reverse=True)[:5]
    return {sid: round(ms / 1000, 3) for sid, ms in top}


def _notes(steps: list[Step]) -> list[str]:
    generations = sorted({step.membership[0] for step in steps if step.membership})
    return [
        "Each step's worker was down (signal → its /readyz 200 again) for "
        + ", ".join(f"{step.ready - step.signalled:.1f}s ({step.signal} worker {step.worker})" for step in steps)
        + f"; group generations seen after the restarts: {generations} (one value: no rebalance during the roll).",
        "A static member never leaves the group, not even on SIGTERM: its partitions wait for it (up to the session "
        "timeout, PROCESSOR_SESSION_TIMEOUT_S) instead of moving to the other worker and back, so a sid's pause is "
        "about its worker's stop plus its restart to ready.",
        "Workers still running at the end of their grace period (killed then): "
        + (", ".join(f"worker {s.worker} ({s.signal})" for s in steps if s.killed_after_grace) or "none")
        + ". A stopping worker does not wait for its open batch to be acked (stream_wait_empty=False): it commits "
        "what is acked and stops, and the rest is read again after its restart.",
    ]
