"""Idempotent topic creation from a list of specs (name, partitions, configs) with aiokafka's admin client."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import for_code

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code TOPIC_ALREADY_EXISTS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the system needs: its name, partition count, replication factor and topic configs."""

    name: str
    partitions: int = 1
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout_s: float = 10.0) -> None:
    """Create the topics that do not exist yet and grow the ones that have fewer partitions than asked."""
    wanted = {spec.name: spec for spec in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}
        missing = [spec for name, spec in wanted.items() if name not in existing]
        if missing:
            await _create(admin, missing)
        grow = {
            name: NewPartitions(spec.partitions)
            for name, spec in wanted.items()
            if name in existing and existing[name] < spec.partitions
        }
        if grow:
            await admin.create_partitions(grow)
        for name in wanted.keys() & existing.keys():
            # Kafka adds partitions but never removes any; existing topics keep their configs.
            log.info("topic %s exists with %d partitions", name, max(existing[name], wanted[name].partitions))
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    new_topics = [
        NewTopic(
            name=spec.name,
            num_partitions=spec.partitions,
            replication_factor=spec.replication_factor,
            topic_configs=dict(spec.configs),
        )
        for spec in specs
    ]
    response = await admin.create_topics(new_topics)
    for topic, code, *message in response.topic_errors:
        # Another process may have created it since we listed: that is the idempotent outcome we want.
        if code and code != _TOPIC_ALREADY_EXISTS:
            raise for_code(code)(f"could not create topic {topic}: {message}")
        log.info("topic %s created", topic)
