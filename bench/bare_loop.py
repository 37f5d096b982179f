"""`python -m bench.bare_loop`: the physical limit, a bare aiokafka consume → orjson.loads → produce loop.

Per batch: `getmany`, parse each record, queue its value to the output topic (headers kept), wait for the batch's
acks, then commit: what at-least-once needs and nothing more. With `--records N` it writes a report (when the
first and the N-th record were handled) and exits; without, it runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


class Progress:
    """Counts handled records; notes when the first and the last expected one were handled."""

    def __init__(self, expected: int, report: Path | None) -> None:
        self.expected = expected
        self.report = report
        self.handled = 0
        self.first_s = 0.0

    def note(self) -> bool:
        """Count one handled record; return True (after writing the report) when it was the last expected one."""
        self.handled += 1
        if self.handled == 1:
            self.first_s = time.time()
        if self.handled != self.expected or self.report is None:
            return False
        done = {"records": self.handled, "first_s": self.first_s, "last_s": time.time()}
        partial = self.report.with_suffix(".tmp")
        partial.write_text(json.dumps(done))
        partial.rename(self.report)  # the benchmark polls for the file: it must appear whole
        return True


async def forward(args: argparse.Namespace) -> None:
    """Consume, parse, produce and commit per batch until the expected count or SIGTERM."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=args.linger_ms
    )
    progress = Progress(args.records, args.report)
    await consumer.start()
    await producer.start()
    try:
        while not stopping.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1_000)
            acks, finished = [], False
            for messages in batch.values():
                for message in messages:
                    orjson.loads(message.value)
                    sent = await producer.send(args.out, message.value, key=message.key, headers=list(message.headers))
                    acks.append(sent)
                    finished = progress.note() or finished
            if acks:
                await asyncio.gather(*acks)
                await consumer.commit()
            if finished:
                return
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    """Parse the arguments and run the loop."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_loop", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True, help="the output topic")
    parser.add_argument("--group", required=True)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--records", type=int, default=0, help="stop after this many (0: run until SIGTERM)")
    parser.add_argument("--report", type=Path, help="where to write the timing report (with --records)")
    asyncio.run(forward(parser.parse_args()))


if __name__ == "__main__":
    main()
