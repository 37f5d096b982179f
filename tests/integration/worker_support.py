"""Helpers to run real processor workers against the session broker and compare them with a replay."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devenv.kafka import free_port
from devenv.processes import stop
from devenv.topics import TopicSpec, ensure_topics
from processor.core.fold import fold_all
from processor.simulation import deliver, generate_session, random_shape
from schemas.decode import decode

PARTITIONS = 3
#: Seconds the whole pipeline may take to settle after the last record is written.
SETTLE_S = 60
ROLES = ("raw", "ticks", "events", "state", "alerts", "dlq")


async def create_topics(bootstrap_servers: str) -> dict[str, str]:
    """Create a fresh set of the processor's topics (state compacted); return role → name."""
    run = uuid.uuid4().hex[:12]
    names = {role: f"{role}-{run}" for role in ROLES}
    specs = [TopicSpec(name, partitions=PARTITIONS) for role, name in names.items() if role != "state"]
    specs.append(TopicSpec(names["state"], partitions=PARTITIONS, configs=(("cleanup.policy", "compact"),)))
    await ensure_topics(bootstrap_servers, specs)
    return names


def noisy_bodies(seed: int, recordings: int) -> list[bytes]:
    """Recordings without lost callbacks, delivered with jitter and resends, interleaved by arrival."""
    rng = random.Random(seed)
    deliveries = []
    for _ in range(recordings):
        shape = replace(random_shape(rng), skip_first_sequence=False)
        deliveries += deliver(rng, generate_session(rng, shape), max_delay_ms=3_000, duplicate_rate=0.2)
    deliveries.sort(key=lambda body: body["notifyMs"])
    return [orjson.dumps(body) for body in deliveries]


@dataclass(frozen=True)
class Worker:
    url: str
    process: subprocess.Popen[bytes]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited with {self.process.returncode}")

    def stop(self) -> None:
        """Stop it as Kubernetes would (SIGTERM: a clean leave of the group), then SIGKILL if it hangs; bounded."""
        stop(self.process)


def worker_env(bootstrap_servers: str, topics: dict[str, str], data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker of a fresh group on these topics; reuse it to restart the same worker."""
    env = {
        **os.environ,
        "PROCESSOR_BOOTSTRAP_SERVERS": bootstrap_servers,
        "PROCESSOR_APP_ID": f"processor-{uuid.uuid4().hex[:8]}",
        "PROCESSOR_PARTITIONS": str(PARTITIONS),
        "PROCESSOR_DATA_DIR": str(data_dir),
        "PROCESSOR_TICK_INTERVAL_S": "0.2",
        "PROCESSOR_LOG_LEVEL": "WARNING",
        **{f"PROCESSOR_{role.upper()}_TOPIC": name for role, name in topics.items()},
    }
    return {**env, **extra}


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[Worker]:
    """Run `python -m processor worker` on loopback (on PROCESSOR_WEB_PORT if `env` has it: a static member keeps its
    URL across restarts); stop it on exit (SIGTERM, then SIGKILL; bounded)."""
    port = int(env.get("PROCESSOR_WEB_PORT") or free_port())
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # our own module, fixed arguments
            [sys.executable, "-m", "processor", "worker"],
            env={**env, "PROCESSOR_WEB_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = Worker(f"http://127.0.0.1:{port}", process)
        try:
            yield worker
        finally:
            worker.stop()
            print(log_path.read_text(errors="replace")[-3000:])  # shown only if the test fails


async def until_ready(worker: Worker, *, timeout_s: float = 60) -> None:
    """Wait until the worker's /readyz answers 200 (its partitions assigned and recovered)."""
    async with asyncio.timeout(timeout_s):
        while True:
            worker.check_alive()
            try:
                if (await asyncio.to_thread(get, f"{worker.url}/readyz"))[0] == 200:
                    return
            except OSError:  # its web server is not listening yet
                pass
            await asyncio.sleep(0.2)


async def publish(bootstrap_servers: str, topic: str, bodies: list[bytes]) -> None:
    """Write bodies keyed by sid, as the ingest does."""
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


async def read_all(bootstrap_servers: str, topic: str, *, idle_s: float = 2.0) -> list[bytes]:
    """Read a topic from its beginning until nothing new arrives for `idle_s`."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    values: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=int(idle_s * 1000)):
            values += [message.value for messages in batch.values() for message in messages if message.value]
    finally:
        await consumer.stop()
    return values


async def settle_state(
    bootstrap_servers: str, topic: str, expected: dict[str, dict[str, object]], worker: Worker
) -> dict[str, object]:
    """Read the state topic until every sid's latest snapshot equals the expected one (bounded)."""
    latest: dict[str, object] = {}
    try:
        async with asyncio.timeout(SETTLE_S):
            async for key, value in records(bootstrap_servers, topic, worker):
                latest[key.decode()] = json.loads(value) if value is not None else None
                if latest == expected:
                    return latest
    except TimeoutError:
        differing = sorted(sid for sid in expected if latest.get(sid) != expected[sid])
        first = differing[0]
        got, want = latest.get(first) or {}, expected[first]
        fields = {name: (got.get(name), want[name]) for name in want if got.get(name) != want[name]}  # type: ignore[union-attr]
        pytest.fail(
            f"the state topic did not reach the replay state within {SETTLE_S}s; {len(differing)} sids differ, "
            f"e.g. {first}: (live, replay) {fields}"
        )
    raise AssertionError("unreachable")  # pragma: no cover


def event_ids_with_changed_content(values: Iterable[bytes]) -> dict[str, list[bytes]]:
    """Return every derived event id that was emitted with more than one content, with its contents."""
    contents: dict[str, set[bytes]] = defaultdict(set)
    for value in values:
        contents[json.loads(value)["event_id"]].add(value)
    return {event_id: sorted(seen) for event_id, seen in contents.items() if len(seen) > 1}


async def assert_every_event_id_has_one_content(bootstrap_servers: str, topic: str) -> None:
    """Read the events topic: some events were sent, and none twice with different content under one event id."""
    values = await read_all(bootstrap_servers, topic)
    assert values
    changed = event_ids_with_changed_content(values)
    assert not changed, f"event ids emitted with different content: {changed}"


def replay_states(bodies: list[bytes]) -> dict[str, dict[str, object]]:
    """What `replay --summary` says of these bodies, sid → snapshot."""
    decoded = [decode(body) for body in bodies]
    fold = fold_all([callback for callback in decoded if hasattr(callback, "payload")])  # type: ignore[misc]
    return {state.sid: json.loads(state.model_dump_json()) for state in fold.snapshots()}


def get(url: str) -> tuple[int, bytes]:
    """GET a loopback URL; return (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # loopback test server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
