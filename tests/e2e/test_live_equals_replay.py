"""Ingest → Kafka → processor, all real: the live state of noisy simulated traffic equals a replay of what was acked."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from devenv.demo import differences
from devenv.processes import Service
from processor.simulate import Options, simulate
from tests.e2e.support import GAP_TIMEOUT_MS, SECRET, running_system

pytestmark = pytest.mark.kafka

Snapshots = dict[str, dict[str, Any]]

#: Below the gap timeout: a shuffled (not dropped) callback always arrives before its hole is skipped, live
#: (wall clock) and in replay (notifyMs clock) alike, so the two see the same holes and count the same `gaps`.
JITTER_MS = 800
SETTLE_S = 20


async def replay_summary(sent: Path) -> Snapshots:
    """Run `python -m processor replay FILE --summary` with the worker's gap timeout; return its snapshots by sid."""
    argv = ["-m", "processor", "replay", str(sent), "--summary", "--gap-timeout-ms", str(GAP_TIMEOUT_MS)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return {state["sid"]: state for state in map(json.loads, out.splitlines())}


async def settle_state(
    bootstrap_servers: str, topic: str, expected: Snapshots, services: list[Service]
) -> dict[str, Any]:
    """Read the state topic until each expected sid's latest snapshot equals the expected one (bounded)."""
    latest: dict[str, Any] = {}
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(SETTLE_S):
            while any(latest.get(sid) != state for sid, state in expected.items()):
                for running in services:
                    running.check_alive()
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    for message in messages:
                        latest[message.key.decode()] = json.loads(message.value) if message.value else None
    except TimeoutError:
        pytest.fail(f"the state topic did not reach the replay within {SETTLE_S}s: {differences(expected, latest)}")
    finally:
        await consumer.stop()
    return latest


def reordered(sent: Path) -> int:
    """Count deliveries that arrived after a higher `sequence` of the same recorder."""
    highest: dict[tuple[str, str], int] = {}
    count = 0
    for line in sent.read_bytes().splitlines():
        payload = json.loads(line)["payload"]
        lane = (payload["sid"], payload["uid"])
        count += payload["sequence"] < highest.get(lane, -1)
        highest[lane] = max(highest.get(lane, -1), payload["sequence"])
    return count


@pytest.mark.timeout(120)
async def test_the_live_state_of_noisy_traffic_equals_the_replay_of_what_the_ingest_acknowledged(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    sent = tmp_path / "sent.jsonl"
    async with (
        running_system(bootstrap_servers, tmp_path) as system,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        options = Options(
            url=f"{system.ingest}/v1/callbacks/agora",
            recordings=10,
            sent=sent,
            secret=SECRET,
            seed=5,
            rate=2_000,
            jitter_ms=JITTER_MS,
            duplicates=0.2,
            drops=0.05,
            failovers=True,
        )
        tally = await simulate(options)
        assert (tally.failed, tally.acknowledged) == (0, tally.sent)

        expected = await replay_summary(sent)
        # The scenario is as noisy as the test's name says.
        assert len(expected) == 10
        assert sum(state["failovers"] for state in expected.values()) > 0
        assert sum(state["duplicates"] for state in expected.values()) > 0
        assert sum(state["gaps"] for state in expected.values()) > 0
        assert reordered(sent) > 0

        latest = await settle_state(bootstrap_servers, system.settings.state_topic, expected, system.services)
        assert {sid: latest[sid] for sid in expected} == expected

        served = {}
        for sid in expected:
            async with session.get(f"{system.query}/recordings/{sid}/") as response:
                assert response.status == 200
                served[sid] = await response.json()
        assert served == expected
