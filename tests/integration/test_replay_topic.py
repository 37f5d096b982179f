"""`replay --topic`: rebuilding state from the raw topic of a running cluster equals replaying the same bodies."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processor import replay
from processor.simulation import deliver, generate_session, random_shape
from tests.conftest import TopicFactory

pytestmark = pytest.mark.kafka


def noisy_bodies(seed: int, recordings: int) -> list[bytes]:
    """Several recordings, delivered with jitter and resends, interleaved by arrival."""
    rng = random.Random(seed)
    deliveries = [
        body
        for _ in range(recordings)
        for body in deliver(rng, generate_session(rng, random_shape(rng)), max_delay_ms=5_000, duplicate_rate=0.2)
    ]
    deliveries.sort(key=lambda body: body["notifyMs"])
    return [orjson.dumps(body) for body in deliveries]


async def publish(bootstrap_servers: str, topic: str, bodies: list[bytes], *, timestamp_ms: int | None = None) -> None:
    """Write bodies keyed by sid, as the ingest does (a broken body is keyed by its own bytes)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for index, body in enumerate(bodies):
            try:
                key = orjson.loads(body)["payload"]["sid"].encode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                key = body[:16]
            stamp = None if timestamp_ms is None else timestamp_ms + index
            await producer.send(topic, body, key=key, timestamp_ms=stamp)
        await producer.flush()
    finally:
        await producer.stop()


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the replay command as its own program would: with an event loop of its own (a worker thread)."""
    code = await asyncio.to_thread(replay.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_replaying_the_raw_topic_equals_replaying_the_same_bodies_from_a_file(
    topic_factory: TopicFactory, bootstrap_servers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = noisy_bodies(seed=11, recordings=12)
    topic = await topic_factory("raw", partitions=3)
    await publish(bootstrap_servers, topic, bodies)
    log = tmp_path / "raw.jsonl"
    log.write_bytes(b"\n".join(bodies) + b"\n")

    code, from_topic, err = await run(capsys, "--topic", topic, "--bootstrap-servers", bootstrap_servers, "--summary")
    assert code == 0, err
    assert err.startswith(f"replay: {len(bodies)} records, {len(bodies)} callbacks, 0 broken,")
    _, from_file, _ = await run(capsys, str(log), "--summary")
    assert from_topic == from_file
    assert len(from_topic.splitlines()) == 12


async def test_a_broken_record_is_reported_with_its_partition_and_offset_and_skipped(
    topic_factory: TopicFactory, bootstrap_servers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await topic_factory("raw")
    await publish(bootstrap_servers, topic, [b"{not json", *noisy_bodies(seed=3, recordings=1)])
    code, out, err = await run(capsys, "--topic", topic, "--bootstrap-servers", bootstrap_servers, "--summary")
    assert code == 0
    assert err.splitlines()[0].startswith("partition 0 offset 0: not JSON")
    assert len(out.splitlines()) == 1
    strict, _, _ = await run(capsys, "--topic", topic, "--bootstrap-servers", bootstrap_servers, "--strict")
    assert strict == 1


async def test_replay_from_a_timestamp_reads_only_the_records_written_since(
    topic_factory: TopicFactory, bootstrap_servers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = await topic_factory("raw")
    bodies = noisy_bodies(seed=5, recordings=2)
    await publish(bootstrap_servers, topic, bodies, timestamp_ms=1_000_000)
    half = len(bodies) // 2
    argv = ("--topic", topic, "--bootstrap-servers", bootstrap_servers, "--summary")
    _, _, err = await run(capsys, *argv, "--from-ms", str(1_000_000 + half))
    assert err.startswith(f"replay: {len(bodies) - half} records,")
    _, _, none_since = await run(capsys, *argv, "--from-ms", str(2_000_000))
    assert none_since.startswith("replay: 0 records,")


async def test_an_unknown_topic_is_a_clear_error(bootstrap_servers: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(capsys, "--topic", "no-such-topic", "--bootstrap-servers", bootstrap_servers)
    assert code == 2
    assert out == ""
    assert "no topic 'no-such-topic'" in err
