"""GET /recordings/ on any worker lists the whole group page by page; a worker leaving costs 503s, not wrong pages."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.integration.worker_support import (
    Worker,
    create_topics,
    noisy_bodies,
    publish,
    replay_states,
    running_worker,
    settle_state,
    until_ready,
    worker_env,
)

pytestmark = pytest.mark.kafka

#: Small enough for several pages of the 30 recordings, and (seed 51) for pages whose boundary crosses workers.
LIMIT = 7
#: How long the group may take to answer whole again after a member left (rebalance, recovery, view filled).
REGROUP_S = 60


def expected_page(expected: dict[str, dict[str, Any]], *, after: str, status: int | None) -> dict[str, Any]:
    """The page the replay says GET /recordings/?status=&after=&limit=LIMIT must answer."""
    sids = [sid for sid in sorted(expected) if sid > after and status in (None, expected[sid]["status"])][:LIMIT]
    return {"recordings": [expected[sid] for sid in sids], "next": sids[-1] if len(sids) == LIMIT else None}


async def listing(worker: Worker, *, after: str = "", status: int | None = None, **extra: str) -> tuple[int, Any, str]:
    """GET one page; return (status, JSON body, Retry-After)."""
    params = {"limit": str(LIMIT), "after": after, **extra, **({} if status is None else {"status": str(status)})}
    query = "&".join(f"{name}={value}" for name, value in params.items())
    code, body, retry = await asyncio.to_thread(get_with_retry_after, f"{worker.url}/recordings/?{query}")
    return code, json.loads(body), retry


def get_with_retry_after(url: str) -> tuple[int, bytes, str]:
    """GET a loopback URL; return (status, body, Retry-After)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback test server
            return response.status, response.read(), response.headers.get("Retry-After", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Retry-After", "")


async def whole_page(worker: Worker, *, after: str, status: int | None, **extra: str) -> Any:
    """Ask for one page until it is answered (a 503 says a rebalance is under way: retry); return it."""
    async with asyncio.timeout(REGROUP_S):
        while True:
            worker.check_alive()
            code, body, retry = await listing(worker, after=after, status=status, **extra)
            if code == 200:
                return body
            assert (code, retry) == (503, "1"), body
            await asyncio.sleep(0.2)


async def page_through(
    worker: Worker, expected: dict[str, dict[str, Any]], *, status: int | None, after: str = ""
) -> list[list[str]]:
    """Follow `next` from the page after `after` to the last, each page exactly the replay's; return their sids."""
    pages: list[list[str]] = []
    for _ in range(len(expected) + 2):
        page = await whole_page(worker, after=after, status=status)
        assert page == expected_page(expected, after=after, status=status)
        pages.append([state["sid"] for state in page["recordings"]])
        if page["next"] is None:
            return pages
        after = page["next"]
    raise AssertionError("the listing never ended")


async def owner_of_each_sid(workers: list[Worker]) -> dict[str, int]:
    """Return sid → index of the worker whose local listing (scope=local) holds it."""
    owner: dict[str, int] = {}
    partitions: list[int] = []
    for index, worker in enumerate(workers):
        local = await whole_page(worker, after="", status=None, scope="local", limit="1000")
        assert local["next"] is None
        partitions += local["partitions"]
        owner |= dict.fromkeys((state["sid"] for state in local["recordings"]), index)
    assert sorted(partitions) == [0, 1, 2]  # each raw partition owned by exactly one of them
    return owner


@pytest.mark.timeout(240)
async def test_any_worker_lists_the_whole_group_and_a_worker_leaving_mid_listing_only_delays_it(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topics = await create_topics(bootstrap_servers)
    env = worker_env(bootstrap_servers, topics, tmp_path / "unused", PROCESSOR_SESSION_TIMEOUT_S="6")
    bodies = noisy_bodies(seed=51, recordings=30)
    expected: dict[str, dict[str, Any]] = dict(replay_states(bodies))

    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                running_worker({**env, "PROCESSOR_DATA_DIR": str(tmp_path / name)}, tmp_path / f"{name}.log")
            )
            for name in ("first", "second", "third")
        ]
        await asyncio.gather(*(until_ready(worker) for worker in workers))
        await publish(bootstrap_servers, topics["raw"], bodies)
        await settle_state(bootstrap_servers, topics["state"], expected, workers[0])
        asked, leaving = workers[1], workers[2]

        # Every status, and none: the pages of one worker are the replay's sids in order, each page exactly.
        for status in (None, *sorted({state["status"] for state in expected.values()})):
            pages = await page_through(asked, expected, status=status)
            listed = [sid for page in pages for sid in page]
            assert listed == sorted(sid for sid, state in expected.items() if status in (None, state["status"]))
            if status is None:
                assert len(pages) > 3
                owner = await owner_of_each_sid(workers)  # one partition each: the sids' owners are known
                assert any(owner[before[-1]] != owner[after[0]] for before, after in itertools.pairwise(pages))
                assert all(len({owner[sid] for sid in page}) > 1 for page in pages[:-1])

        # A worker leaves mid-listing: asking for the next page answers 503 (Retry-After) or the right page, and the
        # right page once the group has settled again.
        first = await whole_page(asked, after="", status=None)
        answers: list[int] = []
        stopping = asyncio.create_task(asyncio.to_thread(leaving.stop))  # SIGTERM: a clean leave, then a rebalance
        deadline = time.monotonic() + REGROUP_S
        while not (stopping.done() and answers and answers[-1] == 200):
            assert time.monotonic() < deadline, f"the group did not answer whole again within {REGROUP_S}s: {answers}"
            code, body, retry = await listing(asked, after=first["next"])
            answers.append(code)
            if code == 200:
                assert body == expected_page(expected, after=first["next"], status=None)
            else:
                assert (code, retry) == (503, "1"), body
            await asyncio.sleep(0.1)
        await stopping
        rest = await page_through(asked, expected, status=None, after=first["next"])
        listed = [state["sid"] for state in first["recordings"]] + [sid for page in rest for sid in page]
        assert listed == sorted(expected)
        assert 503 in answers, answers  # the rebalance was seen, not slept through
