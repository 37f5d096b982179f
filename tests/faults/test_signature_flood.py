"""A flood of badly signed callbacks alongside valid traffic: the valid ones all get 200 and land; the flood, nothing.

The throughput claim (valid requests per second with and without the flood) is measured by bench/ingest_flood.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from ingest.signature import sign
from processor.simulate import Options, simulate
from tests.conftest import TopicFactory
from tests.faults.support import acknowledged, read_to_end
from tests.ingest_support import AGORA_SECRET, agora_headers, callback_body
from tests.integration.ingest_process import running_ingest

pytestmark = pytest.mark.kafka

FLOODERS = 8


def forged_headers(n: int, body: bytes) -> dict[str, str]:
    """Return one of the ways a callback is badly signed: wrong secret, either scheme; garbage; none at all."""
    kinds = [
        agora_headers(body, b"not-the-secret"),
        agora_headers(body, b"not-the-secret", v2=False),
        {"Content-Type": "application/json", "Agora-Signature-V2": "0" * 64},
        {"Content-Type": "application/json", "Agora-Signature-V2": sign(body + b" ", AGORA_SECRET)},  # other bytes
        {"Content-Type": "application/json"},
    ]
    return kinds[n % len(kinds)]


async def flood(
    session: aiohttp.ClientSession, url: str, counter: itertools.count[int], statuses: Counter[int], on: asyncio.Event
) -> None:
    """Post badly signed callbacks back to back, for as long as the task runs; count the answers, then set `on`."""
    while True:
        n = next(counter)
        body = callback_body(sid=f"flood-{n}", sequence=n)
        try:
            async with session.post(url, data=body, headers=forged_headers(n, body)) as response:
                await response.read()
                statuses[response.status] += 1
                on.set()
        except aiohttp.ClientError:  # counted as -1: the test wants an answer to each
            statuses[-1] += 1


@pytest.mark.timeout(120)
async def test_valid_callbacks_all_get_200_and_land_while_a_flood_of_bad_signatures_gets_401_and_publishes_nothing(
    bootstrap_servers: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topic = await topic_factory("flood", partitions=3)
    sent = tmp_path / "sent.jsonl"
    statuses: Counter[int] = Counter()
    with running_ingest(bootstrap_servers, topic, log=tmp_path / "ingest.log", log_level="WARNING") as ingest:
        url = f"{ingest.base_url}/v1/callbacks/agora"
        options = Options(url=url, recordings=20, sent=sent, secret=AGORA_SECRET, seed=3, rate=200, jitter_ms=800)
        connector = aiohttp.TCPConnector(limit=FLOODERS)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), connector=connector) as session,
            asyncio.timeout(90),
        ):
            counter, on = itertools.count(), asyncio.Event()
            flooders = [asyncio.create_task(flood(session, url, counter, statuses, on)) for _ in range(FLOODERS)]
            try:
                await on.wait()  # the flood is on before the valid traffic starts
                tally = await simulate(options)
                flood_during = sum(statuses.values())
            finally:
                for task in flooders:
                    task.cancel()
                for task in flooders:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    # Every valid callback was answered 200 at its first attempt (no retry), the flood only ever 401.
    assert (tally.acknowledged, tally.retried, tally.failed) == (tally.sent, 0, 0)
    assert set(statuses) == {401}, statuses
    assert flood_during > tally.sent, f"not a flood: {flood_during} bad requests during {tally.sent} valid ones"
    # The topic holds exactly the valid bodies: none lost, none of the flood.
    assert Counter(await read_to_end(bootstrap_servers, topic)) == Counter(acknowledged(sent))
