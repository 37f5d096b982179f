"""Fold micro-benchmark: events/s through decode + reorder + state machine vs bare orjson parsing of the same lines."""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from processor.core.fold import Fold, delivery_clock_ms
from processor.simulation import deliver, generate_session, random_shape
from schemas.decode import decode

OUT = Path(__file__).parent / "out"


def make_lines(recordings: int, seed: int) -> list[bytes]:
    """Generated sessions, delivered with NCS-like noise (5 s jitter, 10 % resends), interleaved by arrival."""
    rng = random.Random(seed)
    arrivals: list[dict[str, object]] = []
    for index in range(recordings):
        start = 1_700_000_000_000 + index * 7_000  # recordings start 7 s apart and overlap
        session = generate_session(rng, random_shape(rng), start_ms=start)
        arrivals += deliver(rng, session, max_delay_ms=5_000, duplicate_rate=0.1)
    arrivals.sort(key=lambda body: body["notifyMs"])  # type: ignore[arg-type, return-value]
    return [orjson.dumps(body) for body in arrivals]


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
    """The replay path: decode, reorder, apply, then flush."""
    fold = Fold()
    for line in lines:
        callback = decode(line)
        fold.receive(callback, now_ms=delivery_clock_ms(callback))  # type: ignore[arg-type]  # lines are valid
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


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    """Return the fastest of `repeats` runs (the least disturbed by the rest of the machine)."""
    timings = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    """Run the benchmark and write bench/out/fold.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    lines = make_lines(args.recordings, args.seed)
    variants: dict[str, Callable[[], None]] = {
        "parse_orjson": lambda: parse_only(lines),
        "decode": lambda: decode_only(lines),
        "fold_only": fold_decoded(lines),
        "decode_and_fold": lambda: decode_and_fold(lines),
    }
    # Interleave the variants' repeats so a burst of noise on the machine hits them alike.
    seconds = {name: best_seconds(run, args.repeats) for name, run in variants.items()}
    per_event_us = {name: s / len(lines) * 1e6 for name, s in seconds.items()}
    parse = per_event_us["parse_orjson"]
    result = {
        "events": len(lines),
        "recordings": args.recordings,
        "python": platform.python_version(),
        "per_event_us": {k: round(v, 3) for k, v in per_event_us.items()},
        "events_per_second": {k: round(len(lines) / s) for k, s in seconds.items()},
        "fold_only_vs_parse_ratio": round(per_event_us["fold_only"] / parse, 2),
        "decode_vs_parse_ratio": round(per_event_us["decode"] / parse, 2),
        "decode_and_fold_vs_parse_ratio": round(per_event_us["decode_and_fold"] / parse, 2),
        "target": "fold (reorder + state machine) costs at most 3x bare orjson parsing",
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "fold.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
