"""Workers of one group share the partitions; one joining and one leaving mid-stream lose and double nothing."""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from pathlib import Path

import pytest

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


async def until_it_holds_recordings(worker: Worker, *, timeout_s: float = 60) -> None:
    """Wait until the worker lists recordings of its own (scope=local: only those of the partitions it owns)."""
    async with asyncio.timeout(timeout_s):
        while True:
            worker.check_alive()
            status, body = await asyncio.to_thread(get, f"{worker.url}/recordings/?scope=local")
            if status == 200 and json.loads(body)["recordings"]:
                return
            await asyncio.sleep(0.2)


async def listed_sids(worker: Worker) -> set[str] | None:
    """Return the sids the worker holds, from every page of its local listing (None while it answers 503)."""
    sids: set[str] = set()
    after = ""
    while True:
        status, body = await asyncio.to_thread(get, f"{worker.url}/recordings/?scope=local&limit=1000&after={after}")
        if status == 503:  # a rebalance under way, or its recordings not all known yet
            return None
        assert status == 200, body
        page = json.loads(body)
        sids |= {state["sid"] for state in page["recordings"]}
        if page["next"] is None:
            return sids
        after = page["next"]


async def sids_by_worker(workers: tuple[Worker, ...], expected: set[str], *, timeout_s: float = 60) -> list[set[str]]:
    """Return each worker's listed sids once, together, they list every expected one.

    The state topic can be whole while the group still rebalances (a member's heartbeat late under load): the
    listings answer 503 until it ends, and each worker then fills its local view of what it owns from the table.
    """
    async with asyncio.timeout(timeout_s):
        while True:
            listed = [await listed_sids(worker) for worker in workers]
            held = [sids for sids in listed if sids is not None]
            if len(held) == len(workers) and set[str]().union(*held) >= expected:
                return held
            await asyncio.sleep(0.5)


async def test_two_workers_share_the_load_a_third_joins_one_leaves_and_every_recording_ends_in_the_replay_state(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topics = await create_topics(bootstrap_servers)
    env = worker_env(bootstrap_servers, topics, tmp_path / "unused", PROCESSOR_SESSION_TIMEOUT_S="6")
    bodies = noisy_bodies(seed=44, recordings=30)
    parts = [bodies[i * len(bodies) // 4 : (i + 1) * len(bodies) // 4] for i in range(4)]

    def start(name: str) -> Worker:
        own = {**env, "PROCESSOR_DATA_DIR": str(tmp_path / name)}
        return stack.enter_context(running_worker(own, tmp_path / f"{name}.log"))

    with ExitStack() as stack:
        first, second = start("first"), start("second")
        await publish(bootstrap_servers, topics["raw"], parts[0])
        await asyncio.gather(until_ready(first), until_ready(second))
        await publish(bootstrap_servers, topics["raw"], parts[1])
        await asyncio.gather(until_it_holds_recordings(first), until_it_holds_recordings(second))  # both have a share

        third = start("third")  # joins mid-stream: the group rebalances
        await publish(bootstrap_servers, topics["raw"], parts[2])
        await until_ready(third)
        await until_it_holds_recordings(third)  # and it got a share

        first.stop()  # leaves mid-stream (SIGTERM: a clean leave, another rebalance)
        await publish(bootstrap_servers, topics["raw"], parts[3])
        expected = replay_states(bodies)
        await settle_state(bootstrap_servers, topics["state"], expected, third)
        second.check_alive()

        # Each sid is held by exactly one of the two remaining workers, and either answers for any sid (Faust
        # forwards the query to the owner).
        held = await sids_by_worker((second, third), set(expected))
        assert held[0].isdisjoint(held[1])
        assert held[0] | held[1] == set(expected)
        for asked, sid in zip((second, third) * len(expected), sorted(expected), strict=False):
            status, body = await asyncio.to_thread(get, f"{asked.url}/recordings/{sid}/")
            assert (status, json.loads(body)) == (200, expected[sid])

    await assert_every_event_id_has_one_content(bootstrap_servers, topics["events"])
