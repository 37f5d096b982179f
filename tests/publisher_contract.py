"""The one contract every Publisher passes, run against the in-memory twin and against real Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from ingest.publisher import Publisher, PublishFailed, RawRecord

ReadBack = Callable[[int], Awaitable[list[RawRecord]]]


def record(n: int, *, key: bytes = b"sid-1") -> RawRecord:
    """Return the n-th test record: a body with odd bytes that must survive unchanged."""
    value = b'{"n": %d, "text": "caf\xc3\xa9 \\u00e9", "pad": "  "}' % n
    return RawRecord(key=key, value=value, headers=(("provider", b"agora"), ("n", str(n).encode())))


class PublisherContract:
    """Subclasses provide the fixtures `publisher` (started), `unavailable_publisher` and `read_back`."""

    #: The unavailable publisher's timeout: a failure must come no later than this (plus scheduling slack).
    unavailable_timeout_s = 1.0

    async def test_a_published_record_is_written_byte_for_byte_with_its_key_and_headers(
        self, publisher: Publisher, read_back: ReadBack
    ) -> None:
        await publisher.publish(record(1))
        assert await read_back(1) == [record(1)]

    async def test_records_of_one_key_are_written_in_publish_order(
        self, publisher: Publisher, read_back: ReadBack
    ) -> None:
        for n in range(10):
            await publisher.publish(record(n))
        assert await read_back(10) == [record(n) for n in range(10)]

    async def test_concurrent_publishes_are_all_written(self, publisher: Publisher, read_back: ReadBack) -> None:
        await asyncio.gather(*(publisher.publish(record(n, key=b"k%d" % (n % 3))) for n in range(30)))
        written = await read_back(30)
        assert sorted(r.value for r in written) == sorted(record(n).value for n in range(30))

    async def test_a_started_publisher_is_ready(self, publisher: Publisher) -> None:
        assert await publisher.ready()

    async def test_an_unavailable_destination_fails_the_publish_in_bounded_time(
        self, unavailable_publisher: Publisher
    ) -> None:
        began = time.monotonic()
        with pytest.raises(PublishFailed):
            await unavailable_publisher.publish(record(1))
        assert time.monotonic() - began < self.unavailable_timeout_s + 1.0
        assert not await unavailable_publisher.ready()

    async def test_a_stopped_publisher_refuses_to_publish(self, publisher: Publisher) -> None:
        await publisher.stop()
        with pytest.raises(PublishFailed):
            await publisher.publish(record(1))
