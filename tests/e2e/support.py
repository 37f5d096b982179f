"""Real ingest and worker subprocesses for the end-to-end tests: their settings, start, readiness and stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from devenv import processes
from devenv.kafka import free_port
from devenv.processes import Service
from devenv.topics import TopicSpec, ensure_topics
from processor.settings import ProcessorSettings, worker_environment

SECRET = b"e2e-agora-secret"
#: Short, so that dropped callbacks become reported gaps within a test.
GAP_TIMEOUT_MS = 1_000
START_S = 30


@contextlib.contextmanager
def service(name: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[Service]:
    """Run a subprocess for the block (`devenv.processes.service`), then print its log's tail (shown if it failed)."""
    try:
        with processes.service(name, argv, env, log) as running:
            yield running
    finally:
        print(f"--- {name} log tail\n{log.read_text(errors='replace')[-3000:]}")


def processor_settings(bootstrap_servers: str, tmp_path: Path) -> ProcessorSettings:
    run = uuid.uuid4().hex[:12]
    return ProcessorSettings(
        bootstrap_servers=bootstrap_servers,
        app_id=f"e2e-{run}",
        raw_topic=f"e2e-raw-{run}",
        ticks_topic=f"e2e-ticks-{run}",
        events_topic=f"e2e-events-{run}",
        state_topic=f"e2e-state-{run}",
        alerts_topic=f"e2e-alerts-{run}",
        dlq_topic=f"e2e-dlq-{run}",
        partitions=3,
        data_dir=tmp_path / "data",
        web_port=free_port(),
        gap_timeout_ms=GAP_TIMEOUT_MS,
        tick_interval_s=0.2,
        log_level="WARNING",
    )


def worker_env(settings: ProcessorSettings) -> dict[str, str]:
    return worker_environment(settings, os.environ)


def ingest_env(bootstrap_servers: str, raw_topic: str, port: int) -> dict[str, str]:
    return processes.ingest_env(
        port=str(port),
        bootstrap_servers=bootstrap_servers,
        raw_topic=raw_topic,
        agora_secrets=SECRET.decode(),
        instance_id="e2e",
        log_level="WARNING",
    )


async def wait_for_status(session: aiohttp.ClientSession, url: str, status: int, services: list[Service]) -> None:
    """Poll `url` until it answers `status` (bounded), failing at once if a service died."""
    async with asyncio.timeout(START_S):
        while True:
            for running in services:
                running.check_alive()
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == status:
                        return
            await asyncio.sleep(0.2)


@dataclass(frozen=True)
class System:
    """A running ingest and worker on fresh topics of the session broker: their settings, addresses and processes."""

    settings: ProcessorSettings
    ingest_port: int
    services: list[Service]

    @property
    def query(self) -> str:
        """Return the worker's web address (query API, metrics)."""
        return f"http://127.0.0.1:{self.settings.web_port}"

    @property
    def ingest(self) -> str:
        """Return the ingest's address."""
        return f"http://127.0.0.1:{self.ingest_port}"


@contextlib.asynccontextmanager
async def running_system(bootstrap_servers: str, tmp_path: Path) -> AsyncIterator[System]:
    """Create fresh topics, start a worker and an ingest on them, and wait until both serve (stopped on exit)."""
    settings = processor_settings(bootstrap_servers, tmp_path)
    specs = [TopicSpec(plan.name, plan.partitions, configs=plan.configs) for plan in settings.topic_specs()]
    await ensure_topics(bootstrap_servers, specs)
    ingest_port = free_port()
    with (
        service("worker", [sys.executable, "-m", "processor", "worker"], worker_env(settings), tmp_path / "w.log") as w,
        service(
            "ingest",
            [sys.executable, "-m", "ingest"],
            ingest_env(bootstrap_servers, settings.raw_topic, ingest_port),
            tmp_path / "ingest.log",
        ) as i,
    ):
        system = System(settings, ingest_port, [w, i])
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            # 404 for an unknown sid only once the worker holds its partitions (503 before).
            await wait_for_status(session, f"{system.query}/recordings/none/", 404, system.services)
            await wait_for_status(session, f"{system.ingest}/readyz", 200, system.services)
        yield system
