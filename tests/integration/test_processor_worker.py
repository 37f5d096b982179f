"""A real processor worker on the real broker: its state topic and query API end where a replay of the raw log does."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devenv.kafka import free_port
from devenv.topics import TopicSpec, ensure_topics
from processor.core.fold import fold_all
from processor.simulation import deliver, generate_session, random_shape
from schemas.decode import decode

pytestmark = pytest.mark.kafka

PARTITIONS = 3
#: Seconds the whole pipeline may take to settle after the last record is written.
SETTLE_S = 60


def topic_names() -> dict[str, str]:
    run = uuid.uuid4().hex[:12]
    return {role: f"{role}-{run}" for role in ("raw", "ticks", "events", "state", "alerts", "dlq")}


def noisy_bodies(seed: int, recordings: int) -> list[bytes]:
    """Recordings without lost callbacks, delivered with jitter and resends, interleaved by arrival."""
    rng = random.Random(seed)
    deliveries = []
    for _ in range(recordings):
        shape = replace(random_shape(rng), skip_first_sequence=False)
        deliveries += deliver(rng, generate_session(rng, shape), max_delay_ms=3_000, duplicate_rate=0.2)
    deliveries.sort(key=lambda body: body["notifyMs"])
    return [orjson.dumps(body) for body in deliveries]


POISON = [b"{not json", b"[1, 2]", orjson.dumps({"productId": 1, "eventType": 101, "payload": {}})]


@pytest.fixture
def topics(bootstrap_servers: str) -> dict[str, str]:
    names = topic_names()
    specs = [TopicSpec(name, partitions=PARTITIONS) for role, name in names.items() if role != "state"]
    specs.append(TopicSpec(names["state"], partitions=PARTITIONS, configs=(("cleanup.policy", "compact"),)))
    asyncio.run(ensure_topics(bootstrap_servers, specs))
    return names


@dataclass(frozen=True)
class Worker:
    url: str
    process: subprocess.Popen[bytes]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited with {self.process.returncode}")


@pytest.fixture
def worker(bootstrap_servers: str, topics: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    """Start `python -m processor worker` on loopback; yield it; stop it (bounded)."""
    port = free_port()
    env = {
        **os.environ,
        "PROCESSOR_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PROCESSOR_APP_ID": f"processor-{uuid.uuid4().hex[:8]}",
        "PROCESSOR_RAW_TOPIC": topics["raw"],
        "PROCESSOR_TICKS_TOPIC": topics["ticks"],
        "PROCESSOR_EVENTS_TOPIC": topics["events"],
        "PROCESSOR_STATE_TOPIC": topics["state"],
        "PROCESSOR_ALERTS_TOPIC": topics["alerts"],
        "PROCESSOR_DLQ_TOPIC": topics["dlq"],
        "PROCESSOR_PARTITIONS": str(PARTITIONS),
        "PROCESSOR_DATA_DIR": str(tmp_path / "data"),
        "PROCESSOR_WEB_PORT": str(port),
        "PROCESSOR_TICK_INTERVAL_S": "0.2",
        "PROCESSOR_LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(  # our own module, fixed arguments
        [sys.executable, "-m", "processor", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield Worker(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
        print((tmp_path / "worker.log").read_text(errors="replace")[-3000:])  # shown only if the test failed


async def publish(bootstrap_servers: str, topic: str, bodies: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for body in bodies:
            try:
                key = orjson.loads(body)["payload"]["sid"].encode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                key = b"poison"
            await producer.send(topic, body, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def records(bootstrap_servers: str, topic: str, worker: Worker) -> AsyncIterator[tuple[bytes, bytes | None]]:
    """Yield (key, value) of a topic from its beginning, waiting for more while the worker lives."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while True:
            worker.check_alive()
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    yield message.key, message.value
    finally:
        await consumer.stop()


async def settle_state(
    bootstrap_servers: str, topic: str, expected: dict[str, dict[str, object]], worker: Worker
) -> dict[str, object]:
    """Read the state topic until every sid's latest snapshot equals the expected one (bounded)."""
    latest: dict[str, object] = {}
    async with asyncio.timeout(SETTLE_S):
        async for key, value in records(bootstrap_servers, topic, worker):
            latest[key.decode()] = json.loads(value) if value is not None else None
            if latest == expected:
                return latest
    raise AssertionError("unreachable")  # pragma: no cover


def replay_states(bodies: list[bytes]) -> dict[str, dict[str, object]]:
    decoded = [decode(body) for body in bodies]
    fold = fold_all([callback for callback in decoded if hasattr(callback, "payload")])  # type: ignore[misc]
    return {state.sid: json.loads(state.model_dump_json()) for state in fold.snapshots()}


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # loopback test server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_the_worker_ends_in_the_replay_state_and_dead_letters_poison(
    bootstrap_servers: str, topics: dict[str, str], worker: Worker
) -> None:
    bodies = noisy_bodies(seed=21, recordings=8)
    await publish(bootstrap_servers, topics["raw"], [*POISON[:2], *bodies, POISON[2]])
    expected = replay_states(bodies)

    try:
        latest = await settle_state(bootstrap_servers, topics["state"], expected, worker)
    except TimeoutError:
        pytest.fail("the state topic did not reach the replay state in time")
    assert set(latest) == set(expected)

    dead = []
    async with asyncio.timeout(10):
        async for _, value in records(bootstrap_servers, topics["dlq"], worker):
            dead.append(value)
            if len(dead) == len(POISON):
                break
    assert sorted(dead) == sorted(POISON)

    sid = sorted(expected)[0]
    status, body = await asyncio.to_thread(get, f"{worker.url}/recordings/{sid}/")
    assert status == 200
    assert json.loads(body) == expected[sid]
    status, _ = await asyncio.to_thread(get, f"{worker.url}/recordings/no-such-sid/")
    assert status == 404
