"""The publishing port: a `Publisher` Protocol and its Kafka implementation (acks=all, idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.batches import MAX_REQUEST_BYTES, Batches
from ingest.deadlines import Deadlines

log = logging.getLogger(__name__)


class RawRecord(NamedTuple):
    """One record of the raw topic: the unchanged body, keyed by sid, with provenance headers."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class PublishFailed(Exception):
    """The record is not known to be durable: the caller must not acknowledge the callback."""


class Publisher(Protocol):
    """Where accepted callbacks go. `publish` returns only once the record is durably written."""

    async def start(self) -> None:
        """Begin connecting; must not fail because the destination is unreachable for now."""

    async def publish(self, record: RawRecord) -> None:
        """Write one record and wait for its acknowledgement; raise PublishFailed otherwise."""

    async def ready(self) -> bool:
        """Return whether the destination answers right now."""

    async def stop(self) -> None:
        """Flush what is in flight and release the connection."""


class KafkaPublisher:
    """Publish to one Kafka topic with an idempotent acks=all producer, within a bounded time."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        timeout_s: float,
        linger_ms: int = 1,
        client_id: str = "ingest",
        reconnect_s: float = 1.0,
    ) -> None:
        self.topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._timeout_s = timeout_s
        #: One timer for every publish's timeout, rather than one each.
        self._deadlines = Deadlines(timeout_s)
        self._linger_ms = linger_ms
        self._client_id = client_id
        self._reconnect_s = reconnect_s
        self._producer: AIOKafkaProducer | None = None
        self._batches: Batches | None = None
        self._connecting: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        # aiokafka defaults to acks=1 without idempotence, weaker than Java's: a leader failover could lose
        # an acknowledged callback, or a retry could duplicate it.
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,  # Batches lingers before handing a batch over; kept for completeness
            request_timeout_ms=int(self._timeout_s * 1000),
            max_request_size=MAX_REQUEST_BYTES,
        )

    async def start(self) -> None:
        """Connect in the background, retrying until the cluster answers (publishes fail meanwhile)."""
        self._connecting = asyncio.create_task(self._connect_until_up(), name="kafka-connect")
        with contextlib.suppress(TimeoutError):
            # Give a reachable cluster the chance to be ready before the first request arrives.
            await asyncio.wait_for(asyncio.shield(self._connecting), self._timeout_s)

    async def _connect_until_up(self) -> None:
        while True:
            producer = self._new_producer()
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("kafka unreachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(self._reconnect_s)
                continue
            self._batches = Batches(producer, self.topic, linger_s=self._linger_ms / 1000)
            self._producer = producer
            log.info("kafka producer connected", extra={"bootstrap": self._bootstrap_servers})
            return

    async def publish(self, record: RawRecord) -> None:
        """Send the record and wait for the broker's acknowledgement, at most `timeout_s`."""
        batches = self._batches
        if batches is None:
            raise PublishFailed("not connected to Kafka yet")
        headers = record.headers  # the batches copy them into the list aiokafka's builder takes
        try:
            acknowledged = batches.add(record.key, record.value, headers)
            if acknowledged is None:  # the topic's partitions are not known yet: rare, and may take a while
                async with asyncio.timeout(self._timeout_s):
                    await batches.wait_for_topic()
                    await self._acknowledgement(batches.add(record.key, record.value, headers))
                return
            # A timeout fails this record's own future only: its batch is sent and acknowledged regardless.
            self._deadlines.watch(acknowledged)
            await acknowledged
        except TimeoutError:
            raise PublishFailed(f"no acknowledgement within {self._timeout_s}s") from None
        except KafkaError as exc:
            raise PublishFailed(repr(exc)) from exc

    @staticmethod
    async def _acknowledgement(acknowledged: asyncio.Future[None] | None) -> None:
        if acknowledged is None:
            raise PublishFailed("the topic has no partitions")
        await acknowledged

    async def ready(self) -> bool:
        """Return whether a metadata request succeeds and the topic exists (bounded by the timeout)."""
        producer = self._producer
        if producer is None:
            return False
        try:
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout_s)
        except (KafkaError, OSError, TimeoutError):
            return False
        return metadata.partitions_for_topic(self.topic) is not None

    async def stop(self) -> None:
        """Stop connecting, flush pending records (bounded) and close the producer."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        producer, self._producer = self._producer, None
        batches, self._batches = self._batches, None
        if producer is None or batches is None:
            return
        try:
            await asyncio.wait_for(batches.flush(), self._timeout_s)
        except TimeoutError:
            log.error("records still unacknowledged at shutdown", extra={"timeout_s": self._timeout_s})
        finally:
            await producer.stop()
