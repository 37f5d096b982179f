"""`python -m processor replay FILE | --topic T`: fold a raw log of NCS bodies through the core, as live does."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, TextIO, cast

from processor import collector
from processor.core.fold import Fold, SkipReason, delivery_clock_ms
from processor.core.reorder import DEFAULT_GAP_TIMEOUT_MS, DEFAULT_MAX_BUFFERED, ReorderPolicy
from processor.rawlog import RawBatch, RawEntry, RawLogError, read_file, read_topic
from schemas.compiled import AnyCallback, decode_fast
from schemas.decode import OtherProduct, Rejection
from schemas.derived import DerivedEvent


@dataclass(slots=True)
class ReplayReport:
    """What a replay read, for the closing line on stderr."""

    #: Lines of a file (blank ones included) or records of a topic.
    lines: int = 0
    callbacks: int = 0
    broken: int = 0
    duplicates: int = 0
    skipped: dict[SkipReason, int] = field(default_factory=dict)


class Replayer:
    """Fold raw entries in arrival order with `notifyMs` as the clock, writing derived events as they come."""

    def __init__(self, *, policy: ReorderPolicy, on_derived: IO[str] | None, on_broken: TextIO) -> None:
        self.fold = Fold(policy)
        self.report = ReplayReport()
        self._on_derived = on_derived
        self._on_broken = on_broken

    def feed(self, entry: RawEntry) -> None:
        """Fold one stored delivery (a broken one is reported with where it was found, and skipped)."""
        self.report.lines += 1
        reason = self._fold(entry.body)
        if reason is not None:
            self._broken(entry.where, reason)

    def feed_batch(self, batch: RawBatch) -> None:
        """Fold a batch of records as `feed` folds each (where a record was is spelled out only if it is broken)."""
        self.report.lines += len(batch.bodies)
        fold = self._fold
        for index, body in enumerate(batch.bodies):
            reason = fold(body)
            if reason is not None:
                self._broken(batch.where(index), reason)

    def _fold(self, body: bytes) -> str | None:
        """Fold one body (counted as read by the caller); return why it is broken, or None."""
        if not body or body.isspace():  # a blank line (isspace stops at the first other byte; strip copies)
            return None
        callback = decode_fast(body)
        # `type() is`, not isinstance: pydantic classes check instances the slow ABC way, twice per record.
        if type(callback) is Rejection:
            return callback.reason
        if type(callback) is OtherProduct:
            self.fold.skip("other_product")
            return None
        self.report.callbacks += 1
        callback = cast(AnyCallback, callback)  # neither of the above (`type() is` does not narrow the union)
        step = self.fold.receive(callback, now_ms=delivery_clock_ms(callback))
        self.report.duplicates += step.duplicate
        if self._on_derived is not None:  # else never build them (`--summary`, a state rebuild)
            _write(step.derived, self._on_derived)
        return None

    def _broken(self, where: str, reason: str) -> None:
        self.report.broken += 1
        print(f"{where}: {reason}", file=self._on_broken)

    def finish(self) -> tuple[Fold, ReplayReport]:
        """Flush every buffer (end of input) and return the fold with what was read."""
        _write(self.fold.finish(), self._on_derived)
        self.report.skipped = dict(self.fold.skipped)
        return self.fold, self.report


def replay(
    lines: Iterable[bytes],
    *,
    policy: ReorderPolicy,
    on_derived: IO[str] | None,
    on_broken: TextIO,
) -> tuple[Fold, ReplayReport]:
    """Replay lines of NCS bodies (blank lines skipped), as `python -m processor replay FILE` does."""
    replayer = Replayer(policy=policy, on_derived=on_derived, on_broken=on_broken)
    for number, line in enumerate(lines, start=1):
        replayer.feed(RawEntry(f"line {number}", line))
    return replayer.finish()


async def replay_topic(
    bootstrap_servers: str, topic: str, replayer: Replayer, *, from_ms: int | None = None
) -> tuple[Fold, ReplayReport]:
    """Replay the raw topic of a running cluster, from the beginning or from `from_ms`, up to its current end."""
    async for batch in read_topic(bootstrap_servers, topic, from_ms=from_ms):
        replayer.feed_batch(batch)
    return replayer.finish()


def _write(events: list[DerivedEvent], out: IO[str] | None) -> None:
    if out is not None:
        for event in events:
            out.write(event.model_dump_json() + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the replay command; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.file is None) == (args.topic is None):
        parser.error("give either FILE or --topic")
    policy = ReorderPolicy(gap_timeout_ms=args.gap_timeout_ms, max_buffered=args.max_buffered)
    out = sys.stdout
    replayer = Replayer(policy=policy, on_derived=None if args.summary else out, on_broken=sys.stderr)
    with collector.settled():  # a full collection would scan all that is loaded, a young one what the fold keeps
        try:
            if args.topic is not None:
                replayed = replay_topic(args.bootstrap_servers, args.topic, replayer, from_ms=args.from_ms)
                fold, report = asyncio.run(replayed)
            else:
                for entry in read_file(args.file):
                    replayer.feed(entry)
                fold, report = replayer.finish()
        except (RawLogError, OSError) as error:
            print(f"replay: {error}", file=sys.stderr)
            return 2
        if args.summary:
            for state in fold.snapshots():
                out.write(state.model_dump_json() + "\n")
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items())) or "none"
    read = f"{report.lines} {'records' if args.topic else 'lines'}"
    print(
        f"replay: {read}, {report.callbacks} callbacks, {report.broken} broken, "
        f"{report.duplicates} duplicates, {len(fold.recordings)} recordings, skipped: {skipped}",
        file=sys.stderr,
    )
    return 1 if args.strict and report.broken else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m processor replay", description=__doc__)
    parser.add_argument(
        "file", nargs="?", help="NCS bodies, one JSON object per line, in arrival order ('-' for stdin)"
    )
    parser.add_argument("--topic", help="read the raw topic of a running cluster instead of a file")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092", metavar="HOST:PORT", help="with --topic")
    parser.add_argument("--from-ms", type=int, metavar="MS", help="with --topic: start at this record timestamp")
    parser.add_argument("--summary", action="store_true", help="print one final snapshot per sid instead of events")
    parser.add_argument("--gap-timeout-ms", type=int, default=DEFAULT_GAP_TIMEOUT_MS, metavar="N")
    parser.add_argument("--max-buffered", type=int, default=DEFAULT_MAX_BUFFERED, metavar="N")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any record is broken")
    return parser
