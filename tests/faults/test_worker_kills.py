"""A worker SIGKILLed again and again at seeded random moments under load ends in the replay state, ids stable."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from pathlib import Path

import pytest

from tests.faults.support import publish_paced, read_to_end
from tests.integration.worker_support import (
    create_topics,
    event_ids_with_changed_content,
    noisy_bodies,
    replay_states,
    running_worker,
    settle_state,
    until_ready,
    worker_env,
)

pytestmark = pytest.mark.kafka

KILLS = 3
SEED = 2026
#: Records per second written to the raw topic while the kills go on (the rest follows at once).
LOAD_PER_SECOND = 40
#: Seconds a (re)started worker may take to be ready: Kafka's shortest session (the dead member's partitions move
#: after 6 s) plus an exactly-once worker's changelog recovery (~11.5 s), on a busy machine.
READY_S = 60


@pytest.mark.timeout(240)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_a_worker_killed_at_random_moments_under_load_ends_in_the_replay_state_with_stable_event_ids(
    bootstrap_servers: str, tmp_path: Path, guarantee: str
) -> None:
    topics = await create_topics(bootstrap_servers)
    # The bodies lose no callback, so no hole is ever for good; the worker must not skip one because a kill and
    # a recovery took longer than its gap timeout (the replay's, on notifyMs, is never reached: jitter ≤ 3 s).
    env = worker_env(
        bootstrap_servers,
        topics,
        tmp_path / "data",
        PROCESSOR_SESSION_TIMEOUT_S="6",
        PROCESSOR_PROCESSING_GUARANTEE=guarantee,
        PROCESSOR_GAP_TIMEOUT_MS="600000",
    )
    bodies = noisy_bodies(seed=SEED, recordings=30)
    rng = random.Random(SEED)
    kills_done = asyncio.Event()
    log = tmp_path / "worker.log"
    async with asyncio.timeout(200):
        load = asyncio.create_task(
            publish_paced(bootstrap_servers, topics["raw"], bodies, until=kills_done, per_second=LOAD_PER_SECOND)
        )
        try:
            for _ in range(KILLS):
                with running_worker(env, log) as worker:
                    await until_ready(worker, timeout_s=READY_S)
                    # A seeded moment of its processing: the backlog of its predecessor's dead time, and new load.
                    await asyncio.sleep(rng.uniform(0.1, 2.5))
                    assert not load.done(), "the load must go on during every kill"
                    worker.check_alive()
                    worker.process.send_signal(signal.SIGKILL)
                    worker.process.wait(timeout=10)
            kills_done.set()
            with running_worker(env, log) as last:
                await load
                await settle_state(bootstrap_servers, topics["state"], replay_states(bodies), last)
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load

    # Everything ever written, aborted transactions included: a re-emitted event is the same event, byte for byte.
    events = await read_to_end(bootstrap_servers, topics["events"], isolation_level="read_uncommitted")
    assert events
    changed = event_ids_with_changed_content(events)
    assert not changed, f"{len(changed)} event ids emitted with different content, e.g. {next(iter(changed.items()))}"
