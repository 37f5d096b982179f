"""`python -m processor replay FILE`: fold a raw log of NCS bodies (one JSON per line) through the core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TextIO

from processor.core.fold import Fold, SkipReason, delivery_clock_ms
from processor.core.reorder import DEFAULT_GAP_TIMEOUT_MS, DEFAULT_MAX_BUFFERED, ReorderPolicy
from schemas.decode import OtherProduct, Rejection, decode
from schemas.derived import DerivedEvent


@dataclass(slots=True)
class ReplayReport:
    """What a replay read, for the closing line on stderr."""

    lines: int = 0
    callbacks: int = 0
    broken: int = 0
    duplicates: int = 0
    skipped: dict[SkipReason, int] = field(default_factory=dict)


def replay(
    lines: Iterable[bytes],
    *,
    policy: ReorderPolicy,
    on_derived: IO[str] | None,
    on_broken: TextIO,
) -> tuple[Fold, ReplayReport]:
    """Fold every line in arrival order with `notifyMs` as the clock, then flush; write derived events as they come."""
    fold, report = Fold(policy), ReplayReport()
    for number, line in enumerate(lines, start=1):
        report.lines = number
        if not line.strip():
            continue
        callback = decode(line)
        if isinstance(callback, Rejection):
            report.broken += 1
            print(f"line {number}: {callback.reason}", file=on_broken)
            continue
        if isinstance(callback, OtherProduct):
            fold.skip("other_product")
            continue
        report.callbacks += 1
        step = fold.receive(callback, now_ms=delivery_clock_ms(callback))
        report.duplicates += step.duplicate
        _write(step.derived, on_derived)
    _write(fold.finish(), on_derived)
    report.skipped = dict(fold.skipped)
    return fold, report


def _write(events: list[DerivedEvent], out: IO[str] | None) -> None:
    if out is not None:
        for event in events:
            out.write(event.model_dump_json() + "\n")


def _read_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as log:
        yield from log


def main(argv: list[str] | None = None) -> int:
    """Run the replay command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m processor replay", description=__doc__)
    parser.add_argument("file", help="NCS bodies, one JSON object per line, in arrival order ('-' for stdin)")
    parser.add_argument("--summary", action="store_true", help="print one final snapshot per sid instead of events")
    parser.add_argument("--gap-timeout-ms", type=int, default=DEFAULT_GAP_TIMEOUT_MS, metavar="N")
    parser.add_argument("--max-buffered", type=int, default=DEFAULT_MAX_BUFFERED, metavar="N")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any line is broken")
    args = parser.parse_args(argv)
    policy = ReorderPolicy(gap_timeout_ms=args.gap_timeout_ms, max_buffered=args.max_buffered)
    out = sys.stdout
    fold, report = replay(
        _read_lines(args.file), policy=policy, on_derived=None if args.summary else out, on_broken=sys.stderr
    )
    if args.summary:
        for state in fold.snapshots():
            out.write(state.model_dump_json() + "\n")
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())) or "none"
    print(
        f"replay: {report.lines} lines, {report.callbacks} callbacks, {report.broken} broken, "
        f"{report.duplicates} duplicates, {len(fold.recordings)} recordings, skipped: {skipped}",
        file=sys.stderr,
    )
    return 1 if args.strict and report.broken else 0
