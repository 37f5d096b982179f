"""The broker killed (SIGKILL) and restarted under simulated load: no acknowledged callback is lost, states converge."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from devenv.kafka import EmbeddedKafka
from processor.simulate import Options, simulate
from tests.faults.support import acknowledged, end_offsets, missing, read_to_end, wait_for_records
from tests.ingest_support import AGORA_SECRET
from tests.integration.ingest_process import running_ingest
from tests.integration.worker_support import create_topics, replay_states, running_worker, settle_state, worker_env

pytestmark = pytest.mark.kafka

#: Kill the broker once this many deliveries are on the raw topic: mid-load, with more to come.
KILL_AFTER = 150


@pytest.mark.timeout(180)
async def test_a_broker_killed_and_restarted_mid_load_loses_no_acknowledged_callback_and_states_reach_the_replay(
    short_lived_kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    broker = short_lived_kafka
    bootstrap = broker.bootstrap_servers
    topics = await create_topics(bootstrap)
    sent = tmp_path / "sent.jsonl"
    with running_ingest(bootstrap, topics["raw"], log=tmp_path / "ingest.log", log_level="WARNING") as ingest:
        options = Options(
            url=f"{ingest.base_url}/v1/callbacks/agora",
            recordings=20,
            sent=sent,
            secret=AGORA_SECRET,
            seed=11,
            rate=150,
            jitter_ms=800,
            duplicates=0.2,
            failovers=True,
        )
        async with asyncio.timeout(120):
            load = asyncio.create_task(simulate(options))
            try:
                await wait_for_records(bootstrap, topics["raw"], KILL_AFTER, timeout_s=30)
                broker.kill()
                broker.restart(wait=False)  # same ports, same data directory
                await asyncio.to_thread(broker.wait_until_ready)
                tally = await load
            finally:
                load.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load

    # NCS's retries (at once, 1 s, 3 s; each attempt bounded by the ingest's publish timeout) outlast the outage.
    assert tally.retried > 0, "the kill did not hit the load"
    assert (tally.failed, tally.acknowledged) == (0, tally.sent)
    logged = await read_to_end(bootstrap, topics["raw"])
    acked = acknowledged(sent)
    assert len(acked) == tally.sent
    assert len(logged) == await end_offsets(bootstrap, topics["raw"])  # the read itself missed nothing
    lost = missing(acked, logged)
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged callbacks not among the {len(logged)} on the raw topic"

    # A worker on the restarted broker ends where a replay of the raw topic ends. (It runs after the outage: a
    # worker that loses its broker exits, to be restarted by its supervisor.) Every delivery was acknowledged, so
    # the only holes that stay open are recordings' own (a first sequence never sent); both sides skip those, the
    # replay at its end and the worker after its gap timeout, shortened here so that the test does not sit through
    # 30 s. Shuffled deliveries fill their holes long before either timeout: the replay's 30 s counts notifyMs, which a
    # retry moves by the seconds of its retries; the worker reads the whole log within seconds.
    env = worker_env(bootstrap, topics, tmp_path / "data", PROCESSOR_GAP_TIMEOUT_MS="5000")
    with running_worker(env, tmp_path / "worker.log") as worker:
        await settle_state(bootstrap, topics["state"], replay_states(logged), worker)
