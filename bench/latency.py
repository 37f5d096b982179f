"""End-to-end latency: from the ingest's 200 to the derived event's arrival on the events topic, at a fixed rate.

Signed simulated deliveries (whole recordings, in order, 10 % resent) are posted at 200 per second, open loop
(a recording's next delivery waits for its previous answer, as the simulator does), through a real ingest and a
real worker on the run's broker. A callback's latency is the broker's append time of the first derived event it
caused (matched by sid, uid and sequence; the events topic uses LogAppendTime) minus the client's time of its 200;
a resend and a callback that derives nothing are not matched. Baseline, same bodies at the same rate: produced
straight to a raw topic (acks=all, idempotent, linger 1 ms as the ingest) and forwarded by the bare loop (linger 0,
as Faust's producer): from the producer's ack to the forwarded record's append. The first second is a warm-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer, ConsumerRecord

from bench import brokerio, workload
from bench.context import Context
from bench.ingest_wrk import SECRET, ingest_env
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import answers, python, wait_for
from bench.throughput import worker_env
from devenv.kafka import free_port
from devenv.processes import Service, service
from devenv.topics import TopicSpec
from ingest.signature import sign
from processor.settings import ProcessorSettings

RATE = 200
#: A delivery of its own recording, sent before the measured ones: its commit says the consumer is processing.
PROBE = workload.build(1, seed=1, max_delay_ms=0, duplicate_rate=0).lines[0]
Identity = tuple[str, str, int]


def identity(line: bytes) -> Identity:
    """Return a delivery's (sid, uid, sequence): what its derived events carry."""
    payload = orjson.loads(line)["payload"]
    return str(payload["sid"]), str(payload["uid"]), int(payload["sequence"])


async def at_rate(
    lines: list[bytes], send: Callable[[int, bytes], Awaitable[None]], *, stop: asyncio.Event | None = None
) -> int:
    """Start `send(index, line)` at RATE per second, until `stop` is set if given; a sid's send waits for its
    previous one to finish. Return how many were started."""
    began = time.monotonic()
    previous: dict[bytes, asyncio.Task[None]] = {}
    started = 0

    async def after(before: asyncio.Task[None] | None, index: int, line: bytes) -> None:
        if before is not None:
            await before
        await send(index, line)

    async with asyncio.TaskGroup() as group:
        for index, line in enumerate(lines):
            await asyncio.sleep(max(0.0, began + index / RATE - time.monotonic()))
            if stop is not None and stop.is_set():
                break
            key = workload.sid_of(line)
            previous[key] = group.create_task(after(previous.get(key), index, line))
            started = index + 1
    return started


async def through_worker(ctx: Context, lines: list[bytes]) -> dict[int, float]:
    """Post through the ingest to a worker; return delivery index → latency in ms of each matched callback."""
    settings = _settings(ctx)
    specs = [TopicSpec(plan.name, plan.partitions, configs=plan.configs) for plan in settings.topic_specs()]
    specs[2] = TopicSpec(settings.events_topic, settings.partitions, configs=dict(brokerio.LOG_APPEND_TIME))
    await brokerio.create(ctx.broker, *specs)
    port = free_port()
    answered: list[float] = [0.0] * (len(lines) + 1)  # [-1]: the probe's
    with (
        service("worker", python("processor", "worker"), worker_env(settings), ctx.workdir / "lw.log") as w,
        service(
            "ingest", python("ingest"), ingest_env(ctx.broker, settings.raw_topic, port), ctx.workdir / "li.log"
        ) as i,
    ):
        ready = f"http://127.0.0.1:{port}/readyz"
        await wait_for(lambda: answers(ready, 200), what="ingest", timeout_s=30, services=[w, i])
        url = f"http://127.0.0.1:{port}/v1/callbacks/agora"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def post(index: int, line: bytes) -> None:
                headers = {"Content-Type": "application/json", "Agora-Signature-V2": sign(line, SECRET)}
                async with session.post(url, data=line, headers=headers) as response:
                    answered[index] = time.time()
                    assert response.status == 200, await response.text()

            await post(-1, PROBE)  # the worker is ready once it has processed (and committed) this one
            await _processed(ctx, settings.app_id, settings.raw_topic, [w, i])
            log(f"latency: posting {len(lines)} deliveries at {RATE}/s through ingest and worker")
            await at_rate(lines, post)
        await _drained(ctx, settings.app_id, settings.raw_topic, [w, i])
    return matched(lines, answered, await brokerio.read_to_end(ctx.broker, settings.events_topic))


def matched(lines: list[bytes], answered: list[float], events: list[ConsumerRecord[bytes, bytes]]) -> dict[int, float]:
    """Return delivery index → ms from its 200 to the append of the first derived event it caused."""
    arrived: dict[Identity, int] = {}
    for record in events:
        event = json.loads(record.value)
        if event["sequence"] is not None:  # a gap's event belongs to no single delivery
            key = (event["sid"], event["uid"], event["sequence"])
            arrived[key] = min(arrived.get(key, record.timestamp), record.timestamp)
    first: dict[Identity, int] = {}
    for index, line in enumerate(lines):
        first.setdefault(identity(line), index)  # a resend derives nothing: its first delivery did
    return {index: arrived[key] - answered[index] * 1000 for key, index in first.items() if key in arrived}


async def through_bare_loop(ctx: Context, lines: list[bytes]) -> dict[int, float]:
    """Produce straight to a raw topic, forwarded by the bare loop; return delivery index → latency in ms."""
    raw, out, group = brokerio.unique("latency-raw"), brokerio.unique("latency-out"), brokerio.unique("latency")
    await brokerio.create(
        ctx.broker,
        TopicSpec(raw, brokerio.PARTITIONS),
        TopicSpec(out, brokerio.PARTITIONS, configs=dict(brokerio.LOG_APPEND_TIME)),
    )
    argv = python("bench.bare_loop", "--bootstrap-servers", ctx.broker, "--topic", raw, "--out", out)
    argv += ["--group", group, "--linger-ms", "0"]
    acked: list[float] = [0.0] * len(lines)
    producer = AIOKafkaProducer(bootstrap_servers=ctx.broker, acks="all", enable_idempotence=True, linger_ms=1)
    with service("bare loop", argv, dict(os.environ), ctx.workdir / "latency-bare.log") as loop:
        await producer.start()
        try:
            await producer.send_and_wait(raw, PROBE, key=b"probe", headers=[("bench-index", b"-1")])
            await _processed(ctx, group, raw, [loop])

            async def send(index: int, line: bytes) -> None:
                headers = [("bench-index", str(index).encode())]
                await (await producer.send(raw, line, key=workload.sid_of(line), headers=headers))
                acked[index] = time.time()

            log(f"latency: producing {len(lines)} deliveries at {RATE}/s through the bare loop")
            await at_rate(lines, send)
        finally:
            await producer.stop()
        await _drained(ctx, group, raw, [loop])
    latencies = {}
    for record in await brokerio.read_to_end(ctx.broker, out):
        index = int(dict(record.headers)["bench-index"])
        if index >= 0:
            latencies[index] = record.timestamp - acked[index] * 1000
    return latencies


def _settings(ctx: Context) -> ProcessorSettings:
    app_id = brokerio.unique("latency")
    roles = ("raw", "ticks", "events", "state", "alerts", "dlq")
    names: dict[str, Any] = {f"{role}_topic": f"{app_id}-{role}" for role in roles}
    return ProcessorSettings(
        bootstrap_servers=ctx.broker,
        app_id=app_id,
        partitions=brokerio.PARTITIONS,
        data_dir=ctx.workdir / app_id,
        web_port=free_port(),
        # The default: at WARNING or above Faust's worker sets the root logger to DEBUG (for its terminal
        # spinner), and every debug call of Faust and aiokafka then builds a record (some of the worker's CPU).
        log_level="INFO",
        **names,
    )


async def _processed(ctx: Context, group: str, topic: str, services: list[Service]) -> None:
    """Wait until the group has committed a record of the topic: it is assigned and processing."""

    async def committed() -> bool:
        return sum((await brokerio.committed(ctx.broker, group, topic)).values()) > 0

    await wait_for(committed, what=f"{group} to process a first record", timeout_s=60, services=services)


async def _drained(ctx: Context, group: str, topic: str, services: list[Service]) -> None:
    ends = await brokerio.end_offsets(ctx.broker, topic)

    async def done() -> bool:
        return await brokerio.caught_up(ctx.broker, group, topic, ends)

    await wait_for(done, what=f"{group} to commit the end of {topic}", timeout_s=60, services=services)


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(ctx: Context) -> BenchResult:
    """Measure both paths over the same bodies; compare their p50 and p99 after the warm-up second."""
    seconds = ctx.size(full=20, quick=4)
    load = workload.build(RATE * seconds, seed=ctx.seed, max_delay_ms=0, duplicate_rate=0.1)
    lines = load.lines[: RATE * seconds]
    live = measured(asyncio.run(through_worker(ctx, lines)))
    bare = measured(asyncio.run(through_bare_loop(ctx, lines)))
    assert live, "no derived event matched a posted callback"
    assert bare, "the bare loop forwarded nothing"

    def figure(values: dict[int, float], share: float, label: str) -> Figure:
        return Figure(label, percentile(list(values.values()), share), "ms")

    return BenchResult(
        name="latency",
        title=f"end to end at {RATE} callbacks/s: ingest 200 → derived event on the events topic",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=[
            Comparison(
                "p99_vs_bare_path",
                figure(live, 0.99, "ingest + worker p99"),
                figure(bare, 0.99, "producer + bare loop p99"),
                higher_is_better=False,
                limit=100,
            ),
            Comparison(
                "p50_vs_bare_path",
                figure(live, 0.50, "ingest + worker p50"),
                figure(bare, 0.50, "producer + bare loop p50"),
                higher_is_better=False,
            ),
        ],
        notes=NOTES,
        details={"posted": len(lines), "seconds": seconds, "worker_path": _shape(live), "bare_path": _shape(bare)},
    )


def measured(latencies: dict[int, float]) -> dict[int, float]:
    """Drop the warm-up second's deliveries."""
    return {index: value for index, value in latencies.items() if index >= RATE}


NOTES = [
    "What bounds it: the ingest answers after the raw record's ack (INGEST_LINGER_MS, default 1 ms); the worker "
    "sends a record's derived events as soon as it folds it, through a producer lingering PROCESSOR_PRODUCER_LINGER_MS "
    "(5 ms); a consumer fetch returns as soon as a record arrives. Batches (PROCESSOR_BATCH_WITHIN_MS) delay "
    "snapshots and table writes, not events. "
    "PROCESSOR_TICK_INTERVAL_S (1 s) and PROCESSOR_GAP_TIMEOUT_MS (30 s) only bound callbacks held behind a missing "
    "sequence (up to gap timeout + tick interval); in-order traffic never waits for them, and the commit interval "
    "(Faust's 2.8 s) delays commits, not outputs.",
]


def _shape(latencies: dict[int, float]) -> dict[str, Any]:
    """Return percentiles, how many exceed 100 ms, and in which seconds of the run the slowest fell."""
    values = list(latencies.values())
    slowest = sorted(latencies, key=latencies.__getitem__)[-10:]
    return {
        "matched": len(values),
        **{f"p{round(share * 100)}_ms": round(percentile(values, share), 2) for share in (0.5, 0.9, 0.99)},
        "max_ms": round(max(values), 2),
        "over_100_ms": sum(value > 100 for value in values),
        "slowest_at_s": sorted(round(index / RATE, 2) for index in slowest),
    }
