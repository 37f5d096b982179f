"""Memory benchmark: resident bytes per idle open recording in one worker, memory store and RocksDB.

One worker per store (`python -m processor worker`, default settings, its own topics) is started empty; once its
/readyz answers 200 its RSS is read: the cold reading. Then it is filled level after level (10,000, 20,000 and
100,000 open recordings): the starts of the sessions a level adds (uploader_started and recorder_started, from
processor.simulation, in order) are published at a steady 2,000 a second (population.FILL_RECORDS_PER_S, below
what the worker folds, so it keeps up) and, once its group has committed them and the state
topic shows both callbacks applied for every sid, RSS is read again. A reading waits first until every recording has
been idle longer than the worker keeps a live recording in its cache (PROCESSOR_STATE_CACHE_IDLE_MS, then a batch
timer's period), so what it holds of each is its idle form, then a settle period (the worker idle but for its
timers and Faust's commits), and takes the median of several VmRSS samples from /proc/<pid>/status, 0.5 s apart.
No garbage collection is forced (the worker is not modified): RSS is what the kernel charges the process, the
memory its allocators keep after freeing included.

The figure set against the target is the marginal cost: (RSS at a level − RSS at the level before) ÷ the recordings
it added. With 10,000 open it is that of the next 10,000 (10,000 → 20,000 open), with 100,000 that of 20,000 →
100,000. Each step is filled as the step before it was, so what the first fill grows once is in both readings (the
high-water mark of what processing holds for a while: records fetched ahead, recordings live in the state cache,
outputs and snapshots on their way to the producer; freed afterwards, but kept resident by Python's and the C
allocator, whose pages the recordings' own objects, made in between, pin), and the difference is what the added
idle recordings hold. A baseline read after a warm-up that leaves no recording open does not do this: the memory
the warm-up leaves free but resident absorbs the first recordings, and their RSS grows far less than what they hold.
Published in one burst, the starts left a high-water that varied between runs by about as much as 10,000
recordings hold (~10 MiB): the figure with 10,000 open moved from 1,176 to 3,015 B between runs; at the steady
rate two runs gave 1,355 and 1,415 B. (RSS − cold RSS) ÷ recordings at each level is reported too: it charges that
one-time growth to the first recordings.
The stored value (the table's value for a sid, read from its changelog) and key are the figures' baseline: the
ratio is what holding a recording costs per byte of state. For RocksDB the bytes of its data dir (tables,
write-ahead log, the rest) are reported too.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

from bench import population, procfs, workload
from bench.context import Context
from bench.population import Held, Starts, Tail
from bench.procfs import Memory
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import python
from bench.throughput import worker_env
from devenv.processes import service
from processor.core.fold import RetentionPolicy
from processor.pipeline import Pipeline
from processor.settings import ProcessorSettings

#: The target of an idle open recording in the memory store.
TARGET_BYTES = 2048
#: Open recordings at each reading, in a full and in a quick run: each level after the first adds a step whose
#: marginal cost is the figure for the level before it (10,000 → 20,000 for 10,000) or for its own (20,000 → 100,000).
LEVELS = {"full": (10_000, 20_000, 100_000), "quick": (500, 1_000)}
#: Seconds to settle before reading RSS (after the recordings have left the state cache), and how many readings,
#: in a full and in a quick run.
SETTLE = {"full": (5.0, 7), "quick": (0.5, 2)}
#: Recordings the in-process model folds (its per-recording sizes do not depend on the count).
MODEL_RECORDINGS = 10_000
#: Recordings the model folds first, unmeasured.
WARM_UP = 50
STORE_LABEL = {"memory://": "memory store", "rocksdb://": "RocksDB"}


@dataclass(frozen=True, slots=True)
class Level:
    """The worker's memory once it holds `recordings` open recordings."""

    recordings: int
    memory: Memory
    samples: list[int]
    #: Mean bytes of the table's value and key per recording (its changelog's latest record of each sid).
    value_bytes: float
    key_bytes: float
    #: Mean bytes of the state topic's latest record per sid (the RecordingState JSON).
    state_bytes: float
    #: Apparent bytes of the RocksDB data dir by kind (empty for the memory store).
    disk: dict[str, int]
    process_s: float

    def per_recording(self, empty: Memory) -> float:
        """Return (RSS − RSS at 0 recordings) ÷ recordings."""
        return (self.memory.rss - empty.rss) / self.recordings


@dataclass(frozen=True, slots=True)
class StoreRun:
    """One store's worker: its memory with 0 recordings, then at each level."""

    store: str
    empty: Memory
    empty_samples: list[int]
    levels: list[Level]
    #: sid → the table's latest value (its changelog's last record).
    values: dict[bytes, bytes | None]

    def steps(self) -> list[tuple[Level, Level]]:
        """Return each level with the one before it."""
        return list(zip(self.levels, self.levels[1:], strict=False))

    def one_time(self) -> float:
        """Return the bytes the first level grew beyond its recordings at the first step's marginal cost."""
        first, second = self.levels[0], self.levels[1]
        return first.memory.rss - self.empty.rss - first.recordings * marginal(first, second)


def marginal(before: Level, after: Level) -> float:
    """Return the RSS each recording added from one level to the next."""
    return (after.memory.rss - before.memory.rss) / (after.recordings - before.recordings)


@dataclass(frozen=True, slots=True)
class Model:
    """Bytes per recording of the live objects a memory-store worker keeps, by part; and the value's exact size."""

    parts: dict[str, float]
    exact_value: float
    recordings: int

    @property
    def total(self) -> float:
        """Return the sum of the parts."""
        return sum(self.parts.values())


def run(ctx: Context) -> BenchResult:
    """Fill one worker per store (both at once) with open recordings, level after level; read its memory at each."""
    sources = population.source_digest()  # the worker code this run launches
    levels = list(LEVELS["quick" if ctx.quick else "full"])
    starts = population.session_starts(levels[-1], seed=ctx.seed)

    async def both() -> list[StoreRun]:
        return list(await asyncio.gather(*(_fill(ctx, store, starts, levels) for store in STORE_LABEL)))

    runs = asyncio.run(both())
    model = _model(starts, levels[-1], runs[0].values)
    return _result(runs, model, quick=ctx.quick, sources=sources)


async def _fill(ctx: Context, store: str, starts: Starts, levels: list[int]) -> StoreRun:
    settle_s, samples = SETTLE["quick" if ctx.quick else "full"]
    settings = population.worker_settings(ctx, store=store)
    await population.create_topics(ctx, settings)
    states, changelog = Tail(ctx.broker, settings.state_topic), Tail(ctx.broker, population.changelog_topic(settings))
    seen: dict[bytes, bytes | None] = {}
    values: dict[bytes, bytes | None] = {}
    name = STORE_LABEL[store]
    log(f"memory: {name} worker {settings.app_id}")
    results: list[Level] = []
    log_file = ctx.workdir / f"{settings.app_id}.log"
    with service("worker", python("processor", "worker"), worker_env(settings), log_file) as running:
        pid = running.process.pid
        await population.wait_ready(settings, running, timeout_s=90)
        empty, empty_samples = await asyncio.to_thread(procfs.settled_memory, pid, settle_s=settle_s, samples=samples)
        log(f"memory: {name}, 0 open recordings, RSS {empty.rss / 2**20:.1f} MiB")
        done = 0
        for level in levels:
            began = time.monotonic()
            await population.fill(ctx, settings, running, starts, (done, level), states=states, seen=seen)
            processed = time.monotonic()  # every record of the level was processed before its group committed it
            process_s = processed - began
            values |= population.latest(await changelog.read())
            idle_s = max(0.0, processed + _cache_idle_s(settings) - time.monotonic())
            memory, rss = await asyncio.to_thread(
                procfs.settled_memory, pid, settle_s=idle_s + settle_s, samples=samples
            )
            held = starts.sids[:level]
            disk = procfs.disk_bytes(settings.data_dir) if store == "rocksdb://" else {}
            results.append(
                Level(
                    level,
                    memory,
                    rss,
                    _mean_len(values, held),
                    statistics.fmean(len(sid) for sid in held),
                    _mean_len(seen, held),
                    disk,
                    process_s,
                )
            )
            each = results[-1].per_recording(empty)
            log(f"memory: {name}, {level:,} open, RSS {memory.rss / 2**20:.1f} MiB, {each:,.0f} B each")
            done = level
        running.check_alive()
    population.remember(ctx, Held(settings, levels[-1]))  # stopped cleanly: the recovery benchmark restarts it
    return StoreRun(store, empty, empty_samples, results, values)


def _cache_idle_s(settings: ProcessorSettings) -> float:
    """Return how long after its last delivery a recording is sure to have left the worker's state cache.

    The batch timer trims it once it has been idle PROCESSOR_STATE_CACHE_IDLE_MS; a second of margin.
    """
    return (settings.state_cache_idle_ms + 2 * settings.batch_within_ms) / 1000 + 1.0


def _mean_len(latest: dict[bytes, bytes | None], keys: list[bytes]) -> float:
    return statistics.fmean(len(latest.get(key) or b"") for key in keys)


def _model(starts: Starts, recordings: int, values: dict[bytes, bytes | None]) -> Model:
    """Return per recording the bytes of the live Python objects a memory-store worker keeps for it, by part.

    The table's values are made as the worker makes them (processor.pipeline folding the same starts, in this
    process) and measured by tracemalloc, which sees a bytes object's real allocation (sys.getsizeof only its
    length); the changelog's copy of the same value (exact size) is shown beside it. The rest is sized with
    sys.getsizeof: the key object, the table's dict slot (Faust's memory store is a dict), and the agent's local
    view (four dicts keyed by sid: next tick, held callbacks, status, last delivery; two values are small cached
    ints, two are 32-byte ints). No live recording object: the readings wait until every recording has left the
    worker's state cache (PROCESSOR_STATE_CACHE_IDLE_MS), as an idle one does.
    """
    count = min(recordings, MODEL_RECORDINGS, len(starts.sids) - WARM_UP)
    keys = starts.sids[:count]
    pipeline, table = Pipeline(ProcessorSettings().reorder_policy, RetentionPolicy()), dict[bytes, bytes]()
    for line in starts.of(count, count + WARM_UP):  # caches filled outside the measurement
        pipeline.on_callback(None, workload.sid_of(line), line, [], now_ms=workload.START_MS)
    lines = starts.of(0, count)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for offset, line in enumerate(lines):
            key = workload.sid_of(line)
            at = workload.START_MS
            outcome = pipeline.on_callback(table.get(key), key, line, [], now_ms=at, position=(0, offset))
            if outcome.stored is not None:  # a start callback: always applied
                table[key] = outcome.stored
        live = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    exact = statistics.fmean(sys.getsizeof(values.get(key) or b"") for key in keys)
    big_int = workload.START_MS + count  # a Unix-ms time: a 32-byte int object of its own per entry
    slot = sys.getsizeof(dict.fromkeys(keys, 0)) / count
    parts = {
        "value as allocated": (live - slot * count - sum(sys.getsizeof(key) for key in keys)) / count,
        "key object": statistics.fmean(sys.getsizeof(key) for key in keys),
        "table dict slot": slot,
        "local view (4 dicts + 2 ints)": 4 * slot + 2 * sys.getsizeof(big_int),
    }
    return Model(parts, exact, count)


def _result(runs: list[StoreRun], model: Model, *, quick: bool, sources: str) -> BenchResult:
    comparisons: list[Comparison] = []
    for store_run in runs:
        comparisons += _comparisons(store_run)
    return BenchResult(
        name="memory",
        title="resident bytes per open (started, idle) recording in one worker",
        method=(__doc__ or "").split("\n", 2)[2].strip(),
        comparisons=comparisons,
        notes=_notes(runs, model),
        details={
            "quick": quick,
            "worker_sources": sources,
            "start_callbacks_per_recording": population.START_CALLBACKS,
            "model_bytes_per_recording": {name: round(size, 1) for name, size in model.parts.items()},
            "model_exact_value_bytes": round(model.exact_value, 1),
            "model_recordings": model.recordings,
            "runs": [_run_json(store_run) for store_run in runs],
        },
    )


def _comparisons(store_run: StoreRun) -> list[Comparison]:
    label = STORE_LABEL[store_run.store]
    short = "memory_store" if store_run.store == "memory://" else "rocksdb"
    comparisons = [
        Comparison(
            f"{short}_bytes_per_idle_recording_at_{at}",
            Figure(
                f"{label}: RSS per idle open recording, {at:,} open "
                f"(marginal, {before.recordings:,} → {after.recordings:,})",
                marginal(before, after),
                "B",
            ),
            Figure("stored value + key", after.value_bytes + after.key_bytes, "B"),
            higher_is_better=False,
            limit=TARGET_BYTES if store_run.store == "memory://" else None,
        )
        for at, (before, after) in _figure_steps(store_run)
    ]
    comparisons += [
        Comparison(
            f"{short}_bytes_per_recording_from_cold_at_{level.recordings}",
            Figure(
                f"{label}: (RSS − cold RSS) per open recording, {level.recordings:,} open",
                level.per_recording(store_run.empty),
                "B",
            ),
            Figure("stored value + key", level.value_bytes + level.key_bytes, "B"),
            higher_is_better=False,
        )
        for level in (store_run.levels[0], store_run.levels[-1])
    ]
    last = store_run.levels[-1]
    if last.disk:
        comparisons.append(
            Comparison(
                f"{short}_disk_bytes_per_recording_at_{last.recordings}",
                Figure(f"{label}: data dir per open recording", sum(last.disk.values()) / last.recordings, "B"),
                Figure("stored value + key", last.value_bytes + last.key_bytes, "B"),
                higher_is_better=False,
            )
        )
    comparisons.append(
        Comparison(
            f"{short}_rss_vs_empty_at_{last.recordings}",
            Figure(f"{label}: RSS, {last.recordings:,} open", last.memory.rss / 2**20, "MiB"),
            Figure("RSS, 0 open (same worker, cold)", store_run.empty.rss / 2**20, "MiB"),
            higher_is_better=False,
        )
    )
    return comparisons


def _figure_steps(store_run: StoreRun) -> list[tuple[int, tuple[Level, Level]]]:
    """Return (open recordings it stands for, step): the first step for the first level, the last for its own."""
    steps = store_run.steps()
    chosen = [(steps[0][0].recordings, steps[0])]
    if len(steps) > 1:
        chosen.append((steps[-1][1].recordings, steps[-1]))
    return chosen


def _notes(runs: list[StoreRun], model: Model) -> list[str]:
    notes = []
    for store_run in runs:
        figures = "; ".join(
            f"{marginal(before, after):,.0f} B of RSS with {at:,} open ({before.recordings:,} → {after.recordings:,})"
            for at, (before, after) in _figure_steps(store_run)
        )
        cold = "; ".join(
            f"{level.per_recording(store_run.empty):,.0f} B at {level.recordings:,}" for level in store_run.levels
        )
        verdict = ""
        if store_run.store == "memory://":
            met = all(marginal(*step) < TARGET_BYTES for _, step in _figure_steps(store_run))
            verdict = f" ({'meets' if met else 'misses'} the {TARGET_BYTES:,} B target)"
        notes.append(
            f"{STORE_LABEL[store_run.store]}: an idle open recording adds {figures}{verdict}. From the cold "
            f"reading, (RSS − cold RSS) ÷ recordings is {cold}: the first level grew "
            f"{store_run.one_time() / 2**20:,.1f} MiB beyond its recordings at the marginal cost, once."
        )
    memory_run = next(run for run in runs if run.store == "memory://")
    last = memory_run.levels[-1]
    parts = ", ".join(f"{name} {size:,.0f} B" for name, size in model.parts.items())
    step_cost = marginal(*_figure_steps(memory_run)[-1][1])
    notes.append(
        f"Where the bytes go (a model: the same starts folded through processor.pipeline in this process, "
        f"{model.recordings:,} recordings, sized by tracemalloc and sys.getsizeof): {parts}; {model.total:,.0f} B "
        f"in all against {step_cost:,.0f} B resident. The stored value is a {model.exact_value:,.0f} B bytes object "
        "(sys.getsizeof)."
    )
    for store_run in runs:
        disk = store_run.levels[-1].disk
        if disk:
            sizes = ", ".join(f"{kind} {size / 2**20:.1f} MiB" for kind, size in disk.items())
            notes.append(f"RocksDB data dir at the end: {sizes} (apparent sizes; recent writes sit in the WAL).")
    notes.append(
        f"Each recording: {population.START_CALLBACKS} callbacks; its state record (RecordingState JSON) "
        f"{last.state_bytes:,.0f} B, the table's stored value {last.value_bytes:,.0f} B, "
        f"its key {last.key_bytes:.0f} B."
    )
    return notes


def _run_json(store_run: StoreRun) -> dict[str, Any]:
    return {
        "store": store_run.store,
        "empty_rss_bytes": store_run.empty.rss,
        "empty_rss_anon_bytes": store_run.empty.anon,
        "empty_rss_file_bytes": store_run.empty.file,
        "empty_rss_samples": store_run.empty_samples,
        "levels": [
            {
                "recordings": level.recordings,
                "rss_bytes": level.memory.rss,
                "rss_anon_bytes": level.memory.anon,
                "rss_file_bytes": level.memory.file,
                "peak_rss_bytes": level.memory.peak,
                "rss_samples": level.samples,
                "bytes_per_recording": round(level.per_recording(store_run.empty), 1),
                "value_bytes": round(level.value_bytes, 1),
                "key_bytes": round(level.key_bytes, 1),
                "state_record_bytes": round(level.state_bytes, 1),
                "disk_bytes": level.disk,
                "publish_and_process_s": round(level.process_s, 1),
            }
            for level in store_run.levels
        ],
    }
