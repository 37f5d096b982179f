"""Fixtures shared by the broker tiers (integration, e2e): one real Kafka broker per session, a fresh topic per test."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from devenv.kafka import EmbeddedKafka
from devenv.topics import TopicSpec, ensure_topics

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    """Start one real broker for the whole session (never stopped by a test)."""
    with EmbeddedKafka(log_level="WARN") as broker:
        yield broker


@pytest.fixture
def short_lived_kafka() -> Iterator[EmbeddedKafka]:
    """Start a broker of the test's own, for outages (pause, stop) that must not touch the session's."""
    with EmbeddedKafka(log_level="WARN") as broker:
        yield broker


@pytest.fixture
def bootstrap_servers(kafka: EmbeddedKafka) -> str:
    """Return the session broker's address."""
    return kafka.bootstrap_servers


@pytest.fixture
def topic_factory(bootstrap_servers: str) -> TopicFactory:
    """Create a topic with a unique name for the calling test (on the session broker by default)."""

    async def create(prefix: str = "test", *, partitions: int = 1, bootstrap: str = bootstrap_servers) -> str:
        name = f"{prefix}-{uuid.uuid4().hex}"
        await ensure_topics(bootstrap, [TopicSpec(name, partitions=partitions)])
        return name

    return create
