"""`python -m bench.decode_agent`: the framework's ceiling, a Faust agent that only decodes each raw record.

The app is configured as the processor's worker is (processor/agent.py: broker, memory store, partitions, offset
reset, session timeout, web server) but has no table and sends nothing. It writes a report (when the first and the
N-th record were handled) and keeps running until it is stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import faust

from bench.bare_loop import Progress
from schemas.compiled import decode_fast as decode  # what the worker decodes with

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def baseline_app(args: argparse.Namespace) -> faust.App:
    """Return a Faust app configured as the worker is (the Faust baselines' shared settings)."""
    return faust.App(
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


def create_app(args: argparse.Namespace) -> faust.App:
    """Build the decode-only app."""
    app = baseline_app(args)
    progress = Progress(args.records, args.report)

    @app.agent(app.topic(args.topic, **RAW), name="decode")
    async def decode_only(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():  # as the worker iterates
            decode(event.value)
            progress.note()

    del decode_only  # registered with the app
    return app


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """Return the command line the Faust baselines share (a baseline may add its own arguments)."""
    parsed = argparse.ArgumentParser(prog=prog, description=description)
    parsed.add_argument("--bootstrap-servers", required=True)
    parsed.add_argument("--topic", required=True)
    parsed.add_argument("--app-id", required=True)
    parsed.add_argument("--partitions", type=int, required=True)
    parsed.add_argument("--data-dir", type=Path, required=True)
    parsed.add_argument("--web-port", type=int, required=True)
    parsed.add_argument("--records", type=int, required=True)
    parsed.add_argument("--report", type=Path, required=True)
    return parsed


def serve(app: faust.App) -> None:
    """Run a baseline's worker until SIGTERM."""
    worker = faust.Worker(app, loglevel="INFO")  # the worker's default level (see bench.throughput)
    worker.execute_from_commandline()


def main() -> None:
    """Parse the arguments and run the worker until SIGTERM."""
    serve(create_app(parser("python -m bench.decode_agent", __doc__).parse_args()))


if __name__ == "__main__":
    main()
