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

import faust

from bench.bare_loop import Progress
from bench.decode_agent import RAW, baseline_app, parser, serve
from processor.core.fold import RetentionPolicy
from processor.pipeline import Applied, Forgotten, Pipeline, Ticked
from processor.settings import ProcessorSettings

ROLES = ("events", "state", "alerts", "dlq")


def create_app(args: argparse.Namespace) -> faust.App:
    """Build the straightforward app."""
    app = baseline_app(args)
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
    arguments = parser("python -m bench.straightforward_agent", __doc__)
    arguments.add_argument("--out-prefix", required=True, help="its outputs go to PREFIX-events, PREFIX-state, …")
    serve(create_app(arguments.parse_args()))


if __name__ == "__main__":
    main()
