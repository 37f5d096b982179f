"""A real `python -m ingest` on a loopback port for the integration tier: started, awaited ready, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from devenv.kafka import free_port
from devenv.processes import ingest_env, stop
from tests.ingest_support import AGORA_SECRET, ANYRTC_SECRET

STARTUP_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


@dataclass(frozen=True, slots=True)
class LiveIngest:
    """A running ingest: where to reach it, where it publishes, and its process (for its memory, say)."""

    base_url: str
    port: int
    bootstrap_servers: str
    topic: str
    process: subprocess.Popen[bytes]
    log: Path

    def rss_bytes(self) -> int:
        """Return the process's resident memory, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")


@contextlib.contextmanager
def running_ingest(bootstrap_servers: str, topic: str, *, log: Path, **settings: str) -> Iterator[LiveIngest]:
    """Run the ingest (both providers signed with the test secrets) until the block ends, then SIGTERM it.

    `settings` are INGEST_* variables without the prefix, e.g. `body_timeout_s="1"`.
    """
    port = free_port()
    defaults = {
        "port": str(port),
        "bootstrap_servers": bootstrap_servers,
        "raw_topic": topic,
        "agora_secrets": AGORA_SECRET.decode(),
        "anyrtc_secrets": ANYRTC_SECRET.decode(),
        "instance_id": "ingest-under-test",
    }
    env = ingest_env(**defaults | settings)  # a test's settings override the defaults
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
        )  # our module
    live = LiveIngest(f"http://127.0.0.1:{port}", port, bootstrap_servers, topic, process, log)
    try:
        _wait_ready(live)
        yield live
    finally:
        stop(process, timeout_s=STOP_TIMEOUT_S)


def _wait_ready(live: LiveIngest) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if live.process.poll() is not None:
            raise RuntimeError(f"the ingest exited with {live.process.returncode}:\n{live.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{live.base_url}/readyz", timeout=2) as response:  # noqa: S310  # loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the ingest was not ready within {STARTUP_TIMEOUT_S} s:\n{live.log.read_text()}")


async def records_on(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Return every record of the topic's partition 0 up to its end offset now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, 0)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(20):
            while len(records) < end:
                batch = await consumer.getmany(partition, timeout_ms=500)
                records += batch.get(partition, [])
        return records
    finally:
        await consumer.stop()
