"""A real processor worker on the real broker: its state topic and query API end where a replay of the raw log does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.worker_support import (
    create_topics,
    get,
    noisy_bodies,
    publish,
    records,
    replay_states,
    running_worker,
    settle_state,
    worker_env,
)

pytestmark = pytest.mark.kafka

POISON = [b"{not json", b"[1, 2]", orjson.dumps({"productId": 1, "eventType": 101, "payload": {}})]


@pytest.mark.parametrize(
    ("store", "guarantee"),
    [("memory://", "at_least_once"), ("rocksdb://", "at_least_once"), ("memory://", "exactly_once")],
)
async def test_the_worker_ends_in_the_replay_state_and_dead_letters_poison(
    bootstrap_servers: str, tmp_path: Path, store: str, guarantee: str
) -> None:
    topics = await create_topics(bootstrap_servers)
    env = worker_env(
        bootstrap_servers,
        topics,
        tmp_path / "data",
        PROCESSOR_STORE=store,
        PROCESSOR_PROCESSING_GUARANTEE=guarantee,
    )
    bodies = noisy_bodies(seed=21, recordings=8)
    expected = replay_states(bodies)
    with running_worker(env, tmp_path / "worker.log") as worker:
        await publish(bootstrap_servers, topics["raw"], [*POISON[:2], *bodies, POISON[2]])
        latest = await settle_state(bootstrap_servers, topics["state"], expected, worker)
        assert set(latest) == set(expected)

        dead = []
        async with asyncio.timeout(10):
            async for _, value in records(bootstrap_servers, topics["dlq"], worker):
                dead.append(value)
                if len(dead) == len(POISON):
                    break
        assert sorted(dead) == sorted(POISON)  # type: ignore[type-var]

        sid = sorted(expected)[0]
        status, body = await asyncio.to_thread(get, f"{worker.url}/recordings/{sid}/")
        assert status == 200, body
        assert json.loads(body) == expected[sid]
        status, _ = await asyncio.to_thread(get, f"{worker.url}/recordings/no-such-sid/")
        assert status == 404

        # The listing pages through this worker's recordings of one status, in sid order.
        ended = sorted(sid for sid, state in expected.items() if state["status"] == 8)
        assert len(ended) >= 3  # more than one page of 2
        listed, after = [], ""
        for _ in range(len(ended) + 1):
            status, body = await asyncio.to_thread(get, f"{worker.url}/recordings/?status=8&limit=2&after={after}")
            assert status == 200
            page = json.loads(body)
            listed += page["recordings"]
            if page["next"] is None:
                break
            after = page["next"]
        assert [state["sid"] for state in listed] == ended
        assert all(state == expected[state["sid"]] for state in listed)
        status, _ = await asyncio.to_thread(get, f"{worker.url}/recordings/?status=ended")
        assert status == 400


async def test_readiness_and_the_query_api_answer_503_until_the_partitions_are_assigned(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topics = await create_topics(bootstrap_servers)
    # A member killed without leaving holds the group's rebalance for its session (10 s): its successor's web
    # server is up long before the group assigns it any partition.
    env = worker_env(bootstrap_servers, topics, tmp_path / "data", PROCESSOR_SESSION_TIMEOUT_S="10")
    with running_worker(env, tmp_path / "first.log") as first:
        await wait_for_answer(f"{first.url}/recordings/some-sid/", until={404})
        first.process.kill()
        first.process.wait(timeout=10)

    with running_worker(env, tmp_path / "second.log") as second:
        readiness, query = await asyncio.gather(
            wait_for_answer(f"{second.url}/readyz", until={200}),
            wait_for_answer(f"{second.url}/recordings/some-sid/", until={404}),
        )
    for answers, final in ((readiness, 200), (query, 404)):
        statuses = [status for status, _ in answers]
        assert statuses[0] == 503, statuses
        assert answers[0][1] == "1"  # Retry-After
        assert set(statuses) == {503, final}, statuses  # never faust's 500


async def wait_for_answer(url: str, *, until: set[int], timeout_s: float = 40) -> list[tuple[int, str | None]]:
    """Poll `url` until it answers one of `until`; return every (status, Retry-After) seen once it was up."""
    answers: list[tuple[int, str | None]] = []
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout_s):
        while not answers or answers[-1][0] not in until:
            try:
                async with session.get(url) as response:
                    answers.append((response.status, response.headers.get("Retry-After")))
            except aiohttp.ClientConnectionError:  # not listening yet
                pass
            await asyncio.sleep(0.2)
    return answers
