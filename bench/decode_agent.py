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


def create_app(args: argparse.Namespace) -> faust.App:
    """Build the decode-only app."""
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
    progress = Progress(args.records, args.report)

    @app.agent(app.topic(args.topic, **RAW), name="decode")
    async def decode_only(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():  # as the worker iterates
            decode(event.value)
            progress.note()

    del decode_only  # registered with the app
    return app


def main() -> None:
    """Parse the arguments and run the worker until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.decode_agent", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
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
