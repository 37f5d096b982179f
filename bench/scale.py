"""Scale benchmark: one worker vs two workers in one group, over the same pre-published records (6 partitions).

The run's raw topic (noisy simulated sessions, as the processor benchmark's) is read from its beginning by a fresh
app of one worker, then by a fresh app of two workers launched together (one group; each gets 3 partitions once
both have joined). Throughput is measured as bench.throughput measures the worker: (records − 1) ÷ the window from
the first state record's CreateTime to the earliest time from which every sid's state equals the replay's
(checked). Each worker's CPU seconds (utime + stime from /proc/<pid>/stat, sampled every 0.2 s) are taken inside
that window and in all (start-up included), and the whole machine's busy cores inside it from /proc/stat: the
broker, this process and anything else running share the same cores.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bench import brokerio, population, procfs, workload
from bench.context import Context, RawTopic
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import python, wait_for
from bench.throughput import state_window, worker_env
from devenv.kafka import free_port
from devenv.processes import Service, service
from processor.settings import ProcessorSettings

#: Seconds between CPU samples of the workers and the machine.
SAMPLE_EVERY_S = 0.2
_GENERATION = re.compile(r"Joined group .* \(generation (\d+)\)")


@dataclass(slots=True)
class Samples:
    """Timed readings: wall time, each worker's CPU seconds, the machine's busy CPU seconds."""

    at: list[float] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)

    def take(self, pids: list[int]) -> None:
        """Read every worker's CPU and the machine's busy time now."""
        self.cpu.append([procfs.cpu_seconds(pid) for pid in pids])
        self.busy.append(procfs.machine_busy_seconds()[0])
        self.at.append(time.time())

    def between(self, begin: float, end: float) -> tuple[list[float], float]:
        """Return each worker's CPU seconds and the machine's busy seconds between two wall times (interpolated)."""
        workers = [self._at(end, index) - self._at(begin, index) for index in range(len(self.cpu[0]))]
        return workers, self._busy_at(end) - self._busy_at(begin)

    def _at(self, moment: float, index: int) -> float:
        return self._interpolate(moment, [row[index] for row in self.cpu])

    def _busy_at(self, moment: float) -> float:
        return self._interpolate(moment, self.busy)

    def _interpolate(self, moment: float, values: list[float]) -> float:
        right = min(max(bisect.bisect_left(self.at, moment), 1), len(self.at) - 1)
        t0, t1 = self.at[right - 1], self.at[right]
        share = min(max((moment - t0) / (t1 - t0), 0.0), 1.0) if t1 > t0 else 1.0
        return values[right - 1] + share * (values[right] - values[right - 1])


@dataclass(frozen=True, slots=True)
class GroupRun:
    """One app of `workers` workers over the raw topic: its window, and CPU per worker in it and in all."""

    workers: int
    records: int
    window_s: float
    cpu_window_s: list[float]
    cpu_total_s: list[float]
    busy_cores: float
    #: The highest group generation each worker's log reports joining (1 + rebalances of the group).
    generations: list[int | None]

    @property
    def per_second(self) -> float:
        """Return records per second inside the window."""
        return (self.records - 1) / self.window_s

    @property
    def cpu_us_per_record(self) -> float:
        """Return the workers' CPU microseconds per record inside the window, all workers together."""
        return sum(self.cpu_window_s) * 1e6 / self.records


def run(ctx: Context) -> BenchResult:
    """Run one worker, then two in one group, over the run's raw topic; compare their records/s and CPU."""
    sources = population.source_digest()  # the worker code this run launches
    raw = ctx.raw_topic()
    expected = workload.final_states(raw.workload.lines)
    loads = [os.getloadavg()]
    one = asyncio.run(_group(ctx, raw, expected, workers=1))
    two = asyncio.run(_group(ctx, raw, expected, workers=2))
    loads.append(os.getloadavg())
    return _result(raw, one, two, loads, sources)


async def _group(ctx: Context, raw: RawTopic, expected: dict[str, Any], *, workers: int) -> GroupRun:
    base = population.worker_settings(ctx, store="memory://", raw_topic=raw.name)
    await population.create_topics(ctx, base)
    ends = await brokerio.end_offsets(ctx.broker, raw.name)
    log(f"scale: {workers} worker(s) of {base.app_id} over {raw.records:,} records")
    samples = Samples()
    with contextlib.ExitStack() as stack:
        running = [stack.enter_context(_worker(ctx, base, index)) for index in range(workers)]
        pids = [item.process.pid for item in running]
        sampler = asyncio.create_task(_sample(samples, pids))
        try:

            async def committed_to_end() -> bool:
                return await brokerio.caught_up(ctx.broker, base.app_id, raw.name, ends)

            budget = 60 + raw.records / 300
            await wait_for(committed_to_end, what="workers", timeout_s=budget, services=running, every_s=0.5)
        finally:
            sampler.cancel()
        samples.take(pids)
        logs = [item.log for item in running]
    states = await brokerio.read_to_end(ctx.broker, base.state_topic)
    first_ms, last_ms = state_window(states, expected)
    in_window, busy = samples.between(first_ms / 1000, last_ms / 1000)
    window_s = (last_ms - first_ms) / 1000
    generations = [_generation(path.read_text(errors="replace")) for path in logs]
    result = GroupRun(workers, raw.records, window_s, in_window, samples.cpu[-1], busy / window_s, generations)
    log(f"scale: {workers} worker(s): {result.per_second:,.0f} records/s, CPU in window {in_window}")
    return result


def _worker(ctx: Context, base: ProcessorSettings, index: int) -> contextlib.AbstractContextManager[Service]:
    settings = base.model_copy(update={"web_port": free_port(), "data_dir": ctx.workdir / f"{base.app_id}-{index}"})
    log_file = ctx.workdir / f"{base.app_id}.{index}.log"
    return service(f"worker {index}", python("processor", "worker"), worker_env(settings), log_file)


async def _sample(samples: Samples, pids: list[int]) -> None:
    while True:
        samples.take(pids)
        await asyncio.sleep(SAMPLE_EVERY_S)


def _generation(text: str) -> int | None:
    found = [int(match) for match in _GENERATION.findall(text)]
    return max(found) if found else None


def _result(
    raw: RawTopic, one: GroupRun, two: GroupRun, loads: list[tuple[float, float, float]], sources: str
) -> BenchResult:
    comparisons = [
        Comparison(
            "two_vs_one_worker",
            Figure("two workers, one group", two.per_second, "records/s"),
            Figure("one worker", one.per_second, "records/s"),
        ),
        Comparison(
            "cpu_per_record_two_vs_one_worker",
            Figure("two workers: CPU per record (both)", two.cpu_us_per_record, "µs"),
            Figure("one worker: CPU per record", one.cpu_us_per_record, "µs"),
            higher_is_better=False,
        ),
    ]
    cores = os.cpu_count() or 0

    def cpu(run: GroupRun) -> str:
        return " + ".join(f"{seconds:.1f}" for seconds in run.cpu_window_s)

    notes = [
        f"{raw.records:,} deliveries of {raw.workload.recordings:,} simulated recordings, {brokerio.PARTITIONS} "
        "partitions, memory store, default settings; a fresh group for each run.",
        f"CPU seconds inside the window: one worker {cpu(one)} in {one.window_s:.1f}s; two workers {cpu(two)} in "
        f"{two.window_s:.1f}s. Busy cores of the whole machine ({cores} in all) inside the window: "
        f"{one.busy_cores:.2f} with one worker, {two.busy_cores:.2f} with two.",
        f"Load average (1, 5, 15 min) {loads[0][0]:.2f}, {loads[0][1]:.2f}, {loads[0][2]:.2f} before, "
        f"{loads[1][0]:.2f}, {loads[1][1]:.2f}, {loads[1][2]:.2f} after. The broker, this process and anything "
        "else running share these cores: the ratio says what two workers get out of this machine as it was, not "
        "what two machines would give.",
    ]
    return BenchResult(
        name="scale",
        title="one worker vs two in one group over the same records: records/s and CPU per process",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=comparisons,
        notes=notes,
        details={
            "records": raw.records,
            "cores": cores,
            "runs": [_run_json(one), _run_json(two)],
            "worker_sources": sources,
        },
    )


def _run_json(run: GroupRun) -> dict[str, Any]:
    return {
        "workers": run.workers,
        "records_per_second": round(run.per_second, 1),
        "window_s": round(run.window_s, 2),
        "cpu_window_s": [round(seconds, 2) for seconds in run.cpu_window_s],
        "cpu_total_s": [round(seconds, 2) for seconds in run.cpu_total_s],
        "machine_busy_cores_in_window": round(run.busy_cores, 2),
        "group_generation_joined": run.generations,
    }
