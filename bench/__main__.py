"""`python -m bench [--only NAME,...] [--quick]`: run the benchmarks on one broker and write bench/results.*."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import fold, ingest_flood, ingest_wrk, latency, memory, rebuild, recovery, rolling, scale, throughput
from bench.context import Context
from bench.report import BenchResult, environment, log, write_all
from devenv.kafka import EmbeddedKafka

#: name → (run, needs the broker), in the order they run.
BENCHMARKS: dict[str, tuple[Callable[[Context], BenchResult], bool]] = {
    "fold": (fold.run, False),
    "ingest": (ingest_wrk.run, True),
    "ingest_flood": (ingest_flood.run, True),
    "processor": (throughput.run, True),
    "latency": (latency.run, True),
    "rebuild": (rebuild.run, True),
    "memory": (memory.run, True),
    "recovery": (recovery.run, True),
    "rolling": (rolling.run, True),
    "scale": (scale.run, True),
}
HERE = Path(__file__).parent


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - BENCHMARKS.keys())
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    return names


def main(argv: list[str]) -> int:
    """Run the chosen benchmarks in order and write the results; exit 1 if one failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", type=_names, default=list(BENCHMARKS), metavar="NAME[,NAME]", help=", ".join(BENCHMARKS)
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, figures not comparable")
    parser.add_argument(
        "--out", type=Path, help="where results.* go (default bench/ for a full run of all, else bench/out/)"
    )
    args = parser.parse_args(argv)
    chosen = [name for name in BENCHMARKS if name in args.only]
    complete = not args.quick and len(chosen) == len(BENCHMARKS)
    out_dir = args.out or (HERE if complete else HERE / "out")
    env = environment(argv, quick=args.quick)
    results, failed = [], []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        ctx = Context(quick=args.quick, workdir=Path(tmp))
        if any(BENCHMARKS[name][1] for name in chosen):
            ctx.bootstrap_servers = stack.enter_context(EmbeddedKafka(log_level="WARN")).bootstrap_servers
        for name in chosen:
            log(f"{name}: running")
            began = time.monotonic()
            try:
                result = BENCHMARKS[name][0](ctx)
            except Exception as error:  # one benchmark's failure must not lose the others' figures
                log(f"{name}: FAILED: {error!r}")
                failed.append(name)
                continue
            result.seconds = time.monotonic() - began
            results.append(result)
            log(f"{name}: done in {result.seconds:.0f}s")
    env["failed"] = failed
    for path in write_all(results, env, out_dir):
        log(f"wrote {path}")
    print(Path(out_dir / "results.md").read_text())
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
