"""A worker killed with SIGKILL mid-stream and restarted ends in the replay state; re-sent events keep their ids."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.integration.worker_support import (
    assert_every_event_id_has_one_content,
    create_topics,
    noisy_bodies,
    publish,
    records,
    replay_states,
    running_worker,
    settle_state,
    worker_env,
)

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_a_worker_killed_mid_stream_restarts_into_the_replay_state_with_stable_event_ids(
    bootstrap_servers: str, tmp_path: Path, guarantee: str
) -> None:
    topics = await create_topics(bootstrap_servers)
    # Kafka's shortest session: the group gives the dead worker's partitions to its successor after 6 s.
    env = worker_env(
        bootstrap_servers,
        topics,
        tmp_path / "data",
        PROCESSOR_SESSION_TIMEOUT_S="6",
        PROCESSOR_PROCESSING_GUARANTEE=guarantee,
    )
    bodies = noisy_bodies(seed=33, recordings=30)
    await publish(bootstrap_servers, topics["raw"], bodies)

    with running_worker(env, tmp_path / "worker.log") as first:
        async with asyncio.timeout(60):  # kill it as soon as it has produced its first state record
            async for _ in records(bootstrap_servers, topics["state"], first):
                break
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)

    with running_worker(env, tmp_path / "worker.log") as second:
        await settle_state(bootstrap_servers, topics["state"], replay_states(bodies), second)

    await assert_every_event_id_has_one_content(bootstrap_servers, topics["events"])
