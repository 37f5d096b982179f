"""The in-memory publisher passes the Publisher contract (the Kafka one does in tests/integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ingest.publisher import RawRecord
from tests.ingest_support import MemoryPublisher
from tests.publisher_contract import PublisherContract, ReadBack


@pytest.fixture
async def memory_publisher() -> AsyncIterator[MemoryPublisher]:
    publisher = MemoryPublisher()
    await publisher.start()
    yield publisher
    await publisher.stop()


class TestMemoryPublisher(PublisherContract):
    @pytest.fixture
    def publisher(self, memory_publisher: MemoryPublisher) -> MemoryPublisher:
        return memory_publisher

    @pytest.fixture
    def read_back(self, memory_publisher: MemoryPublisher) -> ReadBack:
        async def read(count: int) -> list[RawRecord]:
            return memory_publisher.records[:count]

        return read

    @pytest.fixture
    async def unavailable_publisher(self) -> MemoryPublisher:
        publisher = MemoryPublisher(timeout_s=self.unavailable_timeout_s)
        await publisher.start()
        publisher.available = False
        return publisher
