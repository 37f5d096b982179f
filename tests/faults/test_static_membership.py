"""Static membership on the real broker: a worker SIGKILLed and restarted with its instance id takes its partitions
back at once, and the other worker never sees a rebalance."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from devenv.kafka import free_port
from tests.integration.worker_support import (
    Worker,
    assert_every_event_id_has_one_content,
    create_topics,
    get,
    noisy_bodies,
    publish,
    replay_states,
    running_worker,
    settle_state,
    until_ready,
    worker_env,
)

pytestmark = pytest.mark.kafka

#: Well above the restart: were the member not static, the group would wait this long before a rebalance.
SESSION_TIMEOUT_S = 20


async def membership_once_ready(worker: Worker) -> tuple[int, list[int]] | None:
    """Return the worker's group generation and the raw partitions it owns, from /readyz; None while that answers 503
    (its partitions are still being assigned or recovered)."""
    status, body = await asyncio.to_thread(get, f"{worker.url}/readyz")
    if status == 503:
        return None
    assert status == 200, body
    answer = json.loads(body)
    return answer["generation"], answer["partitions"]


async def membership(worker: Worker) -> tuple[int, list[int]]:
    """Return the worker's group generation and the raw partitions it owns; /readyz must be 200."""
    answer = await membership_once_ready(worker)
    assert answer is not None, f"{worker.url}/readyz answered 503"
    return answer


async def settled(*workers: Worker) -> list[tuple[int, list[int]]]:
    """Wait until the workers are ready, share one generation and own the three partitions between them (bounded).

    A worker joining the group makes the others rebalance: until it is over, their /readyz answers 503."""
    async with asyncio.timeout(60):
        while True:
            answers = [await membership_once_ready(worker) for worker in workers]
            seen = [answer for answer in answers if answer is not None]
            if len(seen) < len(workers):
                await asyncio.sleep(0.2)
                continue
            owned = sorted(partition for _, partitions in seen for partition in partitions)
            if len({generation for generation, _ in seen}) == 1 and owned == [0, 1, 2]:
                return seen
            await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_a_static_member_killed_and_restarted_gets_its_partitions_back_without_a_rebalance(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topics = await create_topics(bootstrap_servers)
    bodies = noisy_bodies(seed=17, recordings=30)
    half = len(bodies) // 2
    group = worker_env(bootstrap_servers, topics, tmp_path, PROCESSOR_STORE="rocksdb://")
    group["PROCESSOR_SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)

    def member(name: str) -> dict[str, str]:
        return group | {
            "PROCESSOR_GROUP_INSTANCE_ID": name,
            "PROCESSOR_WEB_PORT": str(free_port()),
            "PROCESSOR_DATA_DIR": str(tmp_path / name),
        }

    first, second = member("worker-a"), member("worker-b")
    with running_worker(first, tmp_path / "a.log") as a:
        with running_worker(second, tmp_path / "b.log") as b:
            await until_ready(a)
            await until_ready(b)
            before_a, before_b = await settled(a, b)
            await publish(bootstrap_servers, topics["raw"], bodies[:half])
            await asyncio.sleep(2)  # some of it processed, some in flight: the kill lands mid-stream
            b.process.send_signal(signal.SIGKILL)
            b.process.wait(10)
        killed_at = time.monotonic()
        with running_worker(second, tmp_path / "b.log") as again:
            await until_ready(again, timeout_s=SESSION_TIMEOUT_S / 2)
            back_in_s = time.monotonic() - killed_at
            print(f"the static member was ready again {back_in_s:.1f}s after its SIGKILL")
            assert back_in_s < SESSION_TIMEOUT_S / 2  # no session wait: the coordinator knew its instance id
            assert await membership(again) == before_b  # the same partitions, in the same generation
            assert await membership(a) == before_a  # the other worker saw no rebalance at all
            await publish(bootstrap_servers, topics["raw"], bodies[half:])
            latest = await settle_state(bootstrap_servers, topics["state"], replay_states(bodies), again)
            assert latest == replay_states(bodies)
            assert await membership(a) == before_a
    await assert_every_event_id_has_one_content(bootstrap_servers, topics["events"])
