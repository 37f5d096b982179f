"""Real ingest and worker subprocesses for the end-to-end tests: their settings, start, readiness and stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from devenv.kafka import free_port
from processor.settings import ENV_PREFIX, ProcessorSettings

SECRET = b"e2e-agora-secret"
#: Short, so that dropped callbacks become reported gaps within a test.
GAP_TIMEOUT_MS = 1_000
START_S = 30
STOP_S = 20


@dataclass(frozen=True)
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"the {self.name} exited with {self.process.returncode}:\n{tail}")


@contextlib.contextmanager
def service(name: str, argv: list[str], env: dict[str, str], log: Path) -> Iterator[Service]:
    """Run a subprocess for the block; then SIGTERM it, and SIGKILL it if it does not stop in time."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603  # our modules
    try:
        yield Service(name, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        print(f"--- {name} log tail\n{log.read_text(errors='replace')[-3000:]}")  # shown only if the test failed


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
    clean = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    return {**clean, **{f"{ENV_PREFIX}{key.upper()}": str(value) for key, value in settings.model_dump().items()}}


def ingest_env(bootstrap_servers: str, raw_topic: str, port: int) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    return {
        **clean,
        "INGEST_HOST": "127.0.0.1",
        "INGEST_PORT": str(port),
        "INGEST_BOOTSTRAP_SERVERS": bootstrap_servers,
        "INGEST_RAW_TOPIC": raw_topic,
        "INGEST_AGORA_SECRETS": SECRET.decode(),
        "INGEST_INSTANCE_ID": "e2e",
        "INGEST_LOG_LEVEL": "WARNING",
    }


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
