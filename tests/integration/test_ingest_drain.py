"""SIGTERM drains a real `python -m ingest`: no new connections, the in-flight callback still gets its 200."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from devenv.kafka import EmbeddedKafka, free_port
from tests.conftest import TopicFactory
from tests.ingest_support import AGORA_SECRET, agora_headers, callback_body, wait_until
from tests.integration.test_kafka_publisher import consume

pytestmark = pytest.mark.kafka


@pytest.fixture
def ingest_port() -> int:
    return free_port()


def launch_ingest(bootstrap: str, topic: str, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env = {
        **clean,
        "INGEST_HOST": "127.0.0.1",
        "INGEST_PORT": str(port),
        "INGEST_BOOTSTRAP_SERVERS": bootstrap,
        "INGEST_RAW_TOPIC": topic,
        "INGEST_AGORA_SECRETS": AGORA_SECRET.decode(),
        "INGEST_PUBLISH_TIMEOUT_S": "8",
        "INGEST_DRAIN_TIMEOUT_S": "10",
    }
    return subprocess.Popen([sys.executable, "-m", "ingest"], env=env, stderr=log)


@pytest.fixture
def stopper(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Kill whatever the test launched and did not stop itself; show the ingest's log if the test fails."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    log = tmp_path / "ingest.log"
    if log.exists():
        print(log.read_text())  # captured: pytest shows it only for a failed test


async def answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def refuses_connections(url: str) -> bool:
    async with aiohttp.ClientSession() as fresh:  # a new connection, not a pooled keep-alive one
        try:
            async with fresh.get(url):
                return False
        except aiohttp.ClientConnectionError:
            return True


async def in_flight(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("ingest_requests_in_flight "):
                return float(line.split()[1])
    return 0.0


async def test_sigterm_finishes_the_in_flight_callback_then_exits_cleanly(
    short_lived_kafka: EmbeddedKafka,
    topic_factory: TopicFactory,
    ingest_port: int,
    stopper: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    bootstrap = short_lived_kafka.bootstrap_servers
    topic = await topic_factory("drain", bootstrap=bootstrap)
    with (tmp_path / "ingest.log").open("wb") as log:
        process = launch_ingest(bootstrap, topic, ingest_port, log)
    stopper.append(process)
    base = f"http://127.0.0.1:{ingest_port}"
    body = callback_body(sid="in-flight")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        await wait_until(lambda: answers(session, f"{base}/readyz"), timeout_s=20)
        short_lived_kafka.pause()  # the publish now waits for an acknowledgement that cannot come yet
        try:
            pending = asyncio.create_task(
                session.post(f"{base}/v1/callbacks/agora", data=body, headers=agora_headers(body))
            )

            async def callback_in_flight() -> bool:
                return await in_flight(session, base) == 1  # the gauge counts callbacks, not the scrape

            await wait_until(callback_in_flight, timeout_s=10)
            process.send_signal(signal.SIGTERM)
            await wait_until(lambda: refuses_connections(f"{base}/healthz"), timeout_s=10)
            assert not pending.done(), pending.result().status  # the callback must still be waiting for its ack
        finally:
            short_lived_kafka.resume()
        response = await asyncio.wait_for(pending, 15)
        assert (response.status, await response.read()) == (200, b"{}")
    assert await asyncio.to_thread(process.wait, 15) == 0, (tmp_path / "ingest.log").read_text()
    (record,) = await consume(bootstrap, topic, 1)
    assert record.value == body
