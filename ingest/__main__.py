"""`python -m ingest`: read the settings, log JSON, serve until SIGTERM/SIGINT, then drain and exit."""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from ingest import logs
from ingest.app import init_app
from ingest.settings import IngestSettings, explain

log = logging.getLogger("ingest")


def main() -> int:
    """Run one ingest process; return the exit code (2 for invalid settings)."""
    try:
        settings = IngestSettings()
    except ValidationError as exc:
        print(f"invalid ingest settings:\n{explain(exc)}", file=sys.stderr)  # before logging is set up
        return 2
    logs.configure(settings.log_level, instance=settings.instance_id)
    log.info("starting", extra={"settings": settings.masked()})
    # run_app handles SIGTERM/SIGINT: close the listening socket, run on_shutdown (readiness goes 503), wait up
    # to `shutdown_timeout` for in-flight requests, then the cleanup contexts flush and stop the producer.
    web.run_app(
        init_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.drain_timeout_s,
        access_log=None,
        print=lambda _: log.info("listening", extra={"host": settings.host, "port": settings.port}),
    )
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
