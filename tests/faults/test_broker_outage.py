"""The broker down for 15 s under load: the worker, restarted whenever it exits with its static id and port (as
Kubernetes restarts a pod), processes again within seconds of the broker's return, and nothing is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from devenv.kafka import EmbeddedKafka, free_port
from processor.rawlog import topic_partitions
from tests.faults.support import Supervised, supervised, wait_for_records
from tests.integration.worker_support import (
    assert_every_event_id_has_one_content,
    create_topics,
    noisy_bodies,
    publish,
    replay_states,
    settle_state,
    until_ready,
    worker_env,
)

pytestmark = pytest.mark.kafka

OUTAGE_S = 15
#: Stop the broker once this many deliveries are on the raw topic: mid-load, with more to come.
STOP_AFTER = 300
#: Fast enough that the worker has a batch open (its outputs in flight) most of the time.
LOAD_PER_SECOND = 100
CHUNK = 10
#: The target: processing again this soon after the broker answers again.
BACK_WITHIN_S = 5.0


async def first_written_since(bootstrap_servers: str, topic: str, since_ms: int) -> int | None:
    """Return the earliest timestamp (CreateTime: the writer's clock) of the topic's records at or after `since_ms`."""
    partitions = await topic_partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        stamps = [at.timestamp for at in found.values() if at is not None]
    finally:
        await consumer.stop()
    return min(stamps) if stamps else None


async def load(bootstrap_servers: str, topic: str, bodies: list[bytes], gate: asyncio.Lock) -> None:
    """Publish the bodies in chunks at LOAD_PER_SECOND; a chunk is written whole while it holds `gate`."""
    for start in range(0, len(bodies), CHUNK):
        async with gate:  # the outage takes the gate: no chunk is half written when the broker stops
            await publish(bootstrap_servers, topic, bodies[start : start + CHUNK])
        await asyncio.sleep(CHUNK / LOAD_PER_SECOND)


async def processing_again(keeper: Supervised, bootstrap_servers: str, topic: str, since: float) -> float:
    """Wait until the worker writes a snapshot after `since` (bounded); return the seconds from `since` to it."""
    async with asyncio.timeout(60):
        while True:
            stamp = await first_written_since(bootstrap_servers, topic, int(since * 1000))
            if stamp is not None:
                return stamp / 1000 - since
            await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_a_worker_processes_again_within_seconds_of_its_brokers_return_after_a_15_s_outage_and_loses_nothing(
    short_lived_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    broker = short_lived_kafka
    bootstrap = broker.bootstrap_servers
    topics = await create_topics(bootstrap)
    bodies = noisy_bodies(seed=2027, recordings=30)
    # A static member on a fixed port, as in the StatefulSet. The bodies lose no callback: no hole is for good, so
    # the worker must not skip one because the outage outlasted its gap timeout.
    env = worker_env(
        bootstrap,
        topics,
        tmp_path / "data",
        PROCESSOR_STORE="rocksdb://",
        PROCESSOR_GROUP_INSTANCE_ID="worker-0",
        PROCESSOR_WEB_PORT=str(free_port()),
        PROCESSOR_GAP_TIMEOUT_MS="600000",
    )
    gate = asyncio.Lock()
    async with asyncio.timeout(200), supervised(env, tmp_path / "worker.log") as keeper:
        await until_ready(keeper.worker)
        loading = asyncio.create_task(load(bootstrap, topics["raw"], bodies, gate))
        await wait_for_records(bootstrap, topics["raw"], STOP_AFTER, timeout_s=60)
        async with gate:
            assert not loading.done(), "the load must go on when the broker stops"
            broker.kill()
            stopped = time.time()
            await asyncio.sleep(OUTAGE_S)
            relaunched = time.time()
            broker.restart(wait=False)  # same ports, same data directory
            await asyncio.to_thread(broker.wait_until_ready)
            back = time.time()
        again_s = await processing_again(keeper, bootstrap, topics["state"], back)
        exits = [(round(at - stopped, 1), code) for at, code in keeper.exits]
        print(
            f"broker killed, relaunched {relaunched - stopped:.1f}s later, answering again {back - relaunched:.1f}s "
            f"after that; the worker processed again {again_s:.2f}s after the broker's return; worker exits (s after "
            f"the kill, code): {exits or 'none, it rode the outage out'}; worker starts: {len(keeper.starts)}"
        )
        await loading
        await settle_state(bootstrap, topics["state"], replay_states(bodies), keeper.worker)
    assert again_s < BACK_WITHIN_S
    await assert_every_event_id_has_one_content(bootstrap, topics["events"])
