"""A frozen broker (SIGSTOP) under concurrent load: the ingest answers 503 within its publish timeout, then recovers.

tests/integration/test_ingest_kafka.py already proves it for one request to an in-process app (503 + Retry-After,
/readyz 503, a 200 after SIGCONT). This adds the load: many concurrent callbacks to a real ingest process, every one
answered in bounded time, and after SIGCONT every 200 on the topic.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from devenv.kafka import EmbeddedKafka
from tests.conftest import TopicFactory
from tests.faults.support import missing, read_to_end
from tests.ingest_support import agora_headers, callback_body
from tests.integration.ingest_process import running_ingest

pytestmark = pytest.mark.kafka

PUBLISH_TIMEOUT_S = 1.0
#: The contract is "503 once the publish timeout is up"; the margin absorbs a busy 2-core machine, not a hang.
ANSWER_BOUND_S = PUBLISH_TIMEOUT_S + 4.0
CONCURRENT = 64
#: How long recovery may take after SIGCONT: the producer reconnects, then NCS-like retries reach a 200.
RECOVERY_S = 30


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, float, str | None]:
    """Post one signed callback; return its status, the seconds to its answer, and its Retry-After."""
    began = time.monotonic()
    async with session.post(url, data=body, headers=agora_headers(body)) as response:
        await response.read()
        return response.status, time.monotonic() - began, response.headers.get("Retry-After")


async def post_until_200(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """Post a callback again, as NCS would, until it is answered 200 (the caller bounds the time)."""
    while True:
        status, _, _ = await post(session, url, body)
        if status == 200:
            return
        await asyncio.sleep(0.5)


@pytest.mark.timeout(120)
async def test_a_frozen_broker_gets_every_concurrent_callback_a_503_within_the_publish_timeout_then_200s_again(
    short_lived_kafka: EmbeddedKafka, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    bootstrap = short_lived_kafka.bootstrap_servers
    topic = await topic_factory("frozen", partitions=3, bootstrap=bootstrap)
    settings = {"publish_timeout_s": str(PUBLISH_TIMEOUT_S), "log_level": "WARNING"}
    with running_ingest(bootstrap, topic, log=tmp_path / "ingest.log", **settings) as ingest:
        url = f"{ingest.base_url}/v1/callbacks/agora"
        timeout = aiohttp.ClientTimeout(total=ANSWER_BOUND_S + 5)  # a hang fails the test, it does not stall it
        connector = aiohttp.TCPConnector(limit=CONCURRENT)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session, asyncio.timeout(90):
            before = [callback_body(sid=f"before-{n}", sequence=n) for n in range(CONCURRENT)]
            assert {status for status, _, _ in await asyncio.gather(*(post(session, url, b) for b in before))} == {200}

            frozen = [callback_body(sid=f"frozen-{n}", sequence=n) for n in range(CONCURRENT)]
            short_lived_kafka.pause()
            try:
                answers = await asyncio.gather(*(post(session, url, body) for body in frozen))
            finally:
                short_lived_kafka.resume()
            assert {(status, retry_after is not None) for status, _, retry_after in answers} == {(503, True)}
            slowest = max(seconds for _, seconds, _ in answers)
            assert slowest < ANSWER_BOUND_S, f"a 503 took {slowest:.1f}s (publish timeout {PUBLISH_TIMEOUT_S}s)"

            after = [callback_body(sid=f"after-{n}", sequence=n) for n in range(CONCURRENT)]
            async with asyncio.timeout(RECOVERY_S):
                await asyncio.gather(*(post_until_200(session, url, body) for body in after))

    logged = await read_to_end(bootstrap, topic)
    assert missing(before + after, logged) == []
    # A 503 promises nothing either way: a frozen callback may still have been written once the broker woke up.
    assert set(logged) <= set(before + frozen + after)
