"""`python -m bench.straightforward_agent`: the worker a user would write from faust's documentation, the peer baseline.

Over the same core and the same records as the worker (`processor.pipeline.Pipeline`, the same decode, reorder and
state machine, the same stored bytes): an `app.Table` of per-sid state, and per record read the sid's value, fold
the record, write the value back, and `await topic.send()` each derived event, alert and snapshot; faust's own
acking (a record is acked when the agent takes the next one) and its default settings, no batching of our own.
Configured as the worker is otherwise (memory store, partitions, offset reset, session timeout, web server). It
writes a report (when the first and the N-th record were handled) and keeps running until it is stopped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import faust

from bench.bare_loop import Progress
from processor.core.fold import RetentionPolicy
from processor.pipeline import Applied, Forgotten, Pipeline, Ticked
from processor.settings import ProcessorSettings

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
ROLES = ("events", "state", "alerts", "dlq")


def create_app(args: argparse.Namespace) -> faust.App:
    """Build the straightforward app."""
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap_servers}",
        store="memory://",
        datadir=str(args.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=30.0,
        broker_heartbeat_interval=3.0,
        web_host="127.0.0.1",
        web_port=args.web_port,
    )
    outputs = {role: app.topic(f"{args.out_prefix}-{role}", **RAW) for role in ROLES}
    recordings = app.Table("recordings", partitions=args.partitions, key_type=bytes, value_type=bytes)
    pipeline = Pipeline(ProcessorSettings().reorder_policy, RetentionPolicy())
    progress = Progress(args.records, args.report)

    @app.agent(app.topic(args.topic, **RAW), name="recordings")
    async def fold(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            key, message = event.key, event.message
            outcome = pipeline.on_callback(
                recordings.get(key),
                key,
                event.value,
                list(message.headers or ()),
                now_ms=time.time_ns() // 1_000_000,
                position=(message.partition, message.offset),
            )
            if isinstance(outcome.result, Applied | Ticked | Forgotten):  # the record changed the recording
                if outcome.stored is None:
                    recordings.pop(key, None)
                else:
                    recordings[key] = outcome.stored
            for out in outcome.outgoing:
                await outputs[out.role].send(key=out.key, value=out.value, headers=list(out.headers) or None)
            progress.note()

    del fold  # registered with the app
    return app


def main() -> None:
    """Parse the arguments and run the worker until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.straightforward_agent", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-prefix", required=True, help="its outputs go to PREFIX-events, PREFIX-state, …")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    worker = faust.Worker(create_app(args), loglevel="INFO")  # the worker's default level (see bench.throughput)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
