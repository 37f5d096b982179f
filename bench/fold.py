"""Fold micro-benchmark: decode + reorder + state machine over raw lines vs bare orjson parsing of the same lines."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import orjson

from bench import workload
from bench.context import Context
from bench.report import BenchResult, Comparison, Figure
from processor.core.fold import Fold, delivery_clock_ms
from schemas.compiled import decode_fast as decode

TITLE = "the pure core (decode + reorder + state machine) vs bare orjson parsing"
LABELS = {
    "parse": "orjson.loads",
    "decode": "decode (msgspec, else orjson + pydantic)",
    "fold_only": "reorder + state machine",
    "decode_and_fold": "decode + fold",
    "with_events": "decode + fold + building the derived events",
}


def parse_only(lines: list[bytes]) -> None:
    """The baseline: parse every line with orjson and nothing else."""
    loads = orjson.loads
    for line in lines:
        loads(line)


def decode_only(lines: list[bytes]) -> None:
    """Parse and validate into typed callbacks (schemas.decode), no fold."""
    for line in lines:
        decode(line)


def decode_and_fold(lines: list[bytes]) -> None:
    """The replay path (`--summary`, a state rebuild): decode, reorder, apply, then flush."""
    fold = Fold()
    for line in lines:
        callback = decode(line)
        fold.receive(callback, now_ms=delivery_clock_ms(callback))  # type: ignore[arg-type]  # lines are valid
    fold.finish()


def with_events(lines: list[bytes]) -> None:
    """As `decode_and_fold`, also building every derived event (the fold builds them only when read)."""
    fold = Fold()
    for line in lines:
        callback = decode(line)
        fold.receive(callback, now_ms=delivery_clock_ms(callback)).derived  # type: ignore[arg-type]  # noqa: B018
    fold.finish()


def fold_decoded(lines: list[bytes]) -> Callable[[], None]:
    """Reorder + state machine alone, over callbacks decoded beforehand (not timed)."""
    callbacks = [decode(line) for line in lines]

    def run() -> None:
        fold = Fold()
        for callback in callbacks:
            fold.receive(callback, now_ms=delivery_clock_ms(callback))  # type: ignore[arg-type]
        fold.finish()

    return run


def best_seconds(variants: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Return each variant's fastest run in CPU seconds, its repeats interleaved so that noise hits all alike.

    CPU time of this process, not wall time: on shared cores, time spent waiting for a core is not the code's.
    """
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, run in variants.items():
            gc.collect()
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    return best


def run(ctx: Context) -> BenchResult:
    """Time the four variants over the same lines; compare each one's cost per event with bare parsing."""
    load = workload.build(ctx.size(full=50_000, quick=3_000), seed=ctx.seed, max_delay_ms=5_000, duplicate_rate=0.1)
    lines = load.lines
    variants: dict[str, Callable[[], None]] = {
        "parse": lambda: parse_only(lines),
        "decode": lambda: decode_only(lines),
        "fold_only": fold_decoded(lines),
        "decode_and_fold": lambda: decode_and_fold(lines),
        "with_events": lambda: with_events(lines),
    }
    seconds = best_seconds(variants, ctx.size(full=9, quick=2))
    cost = {name: Figure(label, seconds[name] / len(lines) * 1e6, "µs/event") for name, label in LABELS.items()}

    def versus_parse(name: str, target: float | None = None) -> Comparison:
        return Comparison(f"{name}_vs_parse", cost[name], cost["parse"], higher_is_better=False, target=target)

    return BenchResult(
        name="fold",
        title=TITLE,
        method=(
            f"{len(lines):,} deliveries of {load.recordings:,} simulated recordings (5 s jitter, 10 % resends), "
            "in one process; each variant's best of the interleaved repeats, as CPU time per event. The target "
            "is on decode + fold (what `replay --summary` and a state rebuild run per line: derived events are built "
            "only when read); decode alone and fold alone show where it goes, and the last line what building every "
            "derived event adds (what `replay` without --summary and the worker pay)."
        ),
        comparisons=[
            versus_parse("decode_and_fold", 3.0),
            versus_parse("decode"),
            versus_parse("fold_only"),
            versus_parse("with_events"),
        ],
        details={"events": len(lines), "recordings": load.recordings, "events_per_second": _rates(seconds, lines)},
    )


def _rates(seconds: dict[str, float], lines: list[bytes]) -> dict[str, int]:
    return {name: round(len(lines) / spent) for name, spent in seconds.items()}
