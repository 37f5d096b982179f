"""The Faust worker: raw callbacks and ticks in, the pipeline's decisions out. Glue only: the logic is in pipeline.py.

Tables may only change inside the stream, so time reaches a recording as a *tick*: a timer sends a record keyed by
sid to the ticks topic, which is co-partitioned with the raw topic and read by the same agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.streams import _current_event  # the event a table read or write belongs to (see _Batches)
from faust.types import EventT
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry

from kafkaio.batches import PartitionBatches
from processor import collector
from processor.core.fold import RetentionPolicy, Tracked
from processor.core.machine import event_ms
from processor.metrics import FAUST_NAME_PREFIX, ProcessorMetrics
from processor.pipeline import Batch, InFlight, Outgoing, Pipeline, Result, Write, trim
from processor.recovery import SafeRecoveryTableManager
from processor.sensor import setup_sensors
from processor.settings import ProcessorSettings

#: Default page size of GET /recordings/.
PAGE_SIZE = 100
#: The answer while partitions are being assigned or recovered: the owner of a sid is not known yet.
NOT_READY = {"error": "partitions are being assigned or recovered; retry shortly"}


def wall_clock_ms() -> int:
    """Return the processing time, Unix ms."""
    return time.time_ns() // 1_000_000


def create_app(
    settings: ProcessorSettings,
    *,
    registry: CollectorRegistry | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
) -> faust.App:
    """Build the Faust app: topics, the recordings table, the agent, the tick timer and the web pages."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=settings.store,
        datadir=str(settings.data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        topic_replication_factor=settings.topic_replication_factor,
        producer_linger=settings.producer_linger_ms / 1000,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        web_port=settings.web_port,
        TableManager=SafeRecoveryTableManager,  # faust's own loses input records after a recovery
    )
    raw_codec: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    source = app.topic(settings.raw_topic, settings.ticks_topic, **raw_codec)
    ticks = app.topic(settings.ticks_topic, **raw_codec)
    recordings = app.Table("recordings", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    retention = RetentionPolicy(settings.inactivity_timeout_ms, settings.ended_retention_ms)
    pipeline = Pipeline(settings.reorder_policy, retention)
    registry = registry or CollectorRegistry()
    metrics = ProcessorMetrics.create(registry)
    # Faust's own sensor: framework metrics (per-partition end and committed offsets give consumer lag) and
    # the /metrics page on the worker's web server, for ours too (same registry).
    setup_sensors(app, registry=registry, name_prefix=FAUST_NAME_PREFIX)
    local = _LocalView()
    batches = _Batches(app, settings, pipeline, recordings, metrics, local, clock_ms)

    # A crashed agent must stop the worker (to be restarted), never leave a live process that processes nothing.
    @app.agent(source, name="recordings", supervisor_strategy=CrashingSupervisor)
    async def process(stream: faust.StreamT[bytes]) -> None:
        manual = cast(
            faust.Stream[bytes], stream
        ).noack()  # a record is acked (faust may then commit it) when its batch has ended
        async for event in manual.events():
            await batches.add(manual, event)

    @app.timer(settings.batch_within_ms / 1000)  # type: ignore[untyped-decorator]  # faust's timer is untyped
    async def close_batch() -> None:
        await batches.close()

    @app.timer(settings.tick_interval_s)  # type: ignore[untyped-decorator]  # faust's timer decorator is untyped
    async def send_ticks() -> None:
        now_ms = clock_ms()
        if local.rescan:  # after a (re)start or rebalance: every local recording gets a tick to reschedule
            local.rescan = False
            local.deadlines.update(dict.fromkeys(recordings.keys(), now_ms))
        for key in local.due(now_ms):
            await ticks.send(key=key, value=b"")
        metrics.buffered.set(sum(local.buffered.values()))
        metrics.set_active_by_status(Counter(local.status.values()))
        metrics.set_max_idle(local.status, local.last_delivery, now_ms=now_ms)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        local.clear()  # it may hold recordings of partitions now another worker's
        batches.forget()

    # The live recordings are valid only while the partitions are ours and the table is what they were read from.
    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        batches.forget()

    @app.on_rebalance_complete.connect
    async def on_recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        batches.forget()

    def ready() -> bool:
        """Whether partitions are assigned and recovered: who owns which sid is known, and the state is whole."""
        return not app.rebalancing and bool(app.router.tables_metadata())

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Readiness: 200 once this worker's partitions are assigned and its table recovered, else 503."""
        if not ready():
            return web.json(NOT_READY, status=503, headers={"Retry-After": "1"})
        return web.json({"ready": True})

    @app.table_route(table=recordings, match_info="sid")
    async def owned_recording(web: Any, request: Any, sid: str) -> Any:
        state = batches.snapshot(sid.encode())
        if state is None:
            return web.json({"error": f"unknown sid {sid}"}, status=404)
        return web.bytes(state, content_type="application/json")

    @app.page("/recordings/{sid}/")
    async def get_recording(web: Any, request: Any, sid: str) -> Any:
        """The snapshot of one recording, answered by (or forwarded to) the worker that owns its sid."""
        if not ready():  # nobody knows who owns what yet
            return web.json(NOT_READY, status=503, headers={"Retry-After": "1"})
        return await owned_recording(web, request, sid)  # type: ignore[call-arg]  # a union of view signatures

    @app.page("/recordings/")
    async def list_recordings(web: Any, request: Any) -> Any:
        """This worker's recordings (optionally of one `status`), by sid, `limit` a page after the sid `after`."""
        if not ready():  # the local view is refilled by the ticks after the assignment
            return web.json(NOT_READY, status=503, headers={"Retry-After": "1"})
        try:
            status = int(request.query["status"]) if "status" in request.query else None
            limit = int(request.query.get("limit", PAGE_SIZE))
        except ValueError:
            return web.json({"error": "status and limit must be integers"}, status=400)
        size = min(max(limit, 1), 1000)
        keys = local.page(status=status, after=request.query.get("after", "").encode(), limit=size)
        states = [json.loads(state) for state in map(batches.snapshot, keys) if state is not None]
        following = keys[-1].decode() if len(keys) == size else None
        return web.json({"recordings": states, "next": following})

    del process, close_batch, send_ticks, on_assigned, on_revoked, on_recovered, readyz, get_recording, list_recordings
    return app


class _Batches:
    """Folds each input record as it arrives and sends its outputs; every batch of records then ends in the table.

    A batch is closed when it holds `batch_max_records` or when the batch timer fires: its snapshots (one per
    changed sid) are sent, and in the background, once every output of the batch is acknowledged (acks=all), the
    table's changelog records that stand for them are queued and only then are the batch's records acked to faust,
    which commits input offsets only up to acked records, after flushing the producer. So a changelog record is never
    durable without its events (with several brokers they go to different partition leaders, and queueing order
    alone would not say which is written first), and whatever a crash interrupts is read again. Batches end in
    order, and waiting for the acks holds up no processing.

    At least once, the outputs are appended to per-partition Kafka batches of faust's own producer (`kafkaio.batches`:
    `producer.send` cost ~25 µs of Python per record, a tenth of the worker's CPU); a batch ends once every such
    batch holding its outputs is acknowledged. Exactly-once: each output is sent with faust's transaction manager
    (`maybe_start_producer`), in the transaction faust commits with the offsets.
    """

    def __init__(
        self,
        app: faust.App,
        settings: ProcessorSettings,
        pipeline: Pipeline,
        table: Any,
        metrics: ProcessorMetrics,
        local: _LocalView,
        clock_ms: Callable[[], int],
    ) -> None:
        self.app, self.pipeline, self.table, self.metrics, self.local = app, pipeline, table, metrics, local
        self.clock_ms, self.ticks_topic = clock_ms, settings.ticks_topic
        self.transactional = settings.processing_guarantee == "exactly_once"
        self.linger_s = settings.producer_linger_ms / 1000
        #: The at-least-once outputs' batches, on faust's current producer (None until the first batch).
        self.outputs: PartitionBatches | None = None
        self.max_records, self.cache_limit = settings.batch_max_records, settings.state_cache_recordings
        self.cache_idle_ms = settings.state_cache_idle_ms
        self.topics = {
            "events": settings.events_topic,
            "state": settings.state_topic,
            "alerts": settings.alerts_topic,
            "dlq": settings.dlq_topic,
        }
        #: Live recordings by table key, each what the table holds or will once the batches in flight end;
        #: emptied on every assignment, revocation and recovery, so it never outlives the partition it came from.
        self.cache: dict[bytes, Tracked] = {}
        #: Table keys whose live recording is newer than the table (their batch has not ended): never trimmed.
        self.in_flight = InFlight()
        self.epoch, self.generation = 0, -1
        self.open: _Open | None = None
        self.ending: asyncio.Future[None] | None = None
        self.lock = asyncio.Lock()

    def forget(self) -> None:
        """Drop every live recording: the table is the truth again."""
        self.cache.clear()
        self.epoch += 1

    async def add(self, stream: faust.StreamT[bytes], event: EventT[bytes]) -> None:
        """Fold one record into the open batch and send its outputs; close the batch when it is full."""
        async with self.lock:
            opened = self.open or await self._start(stream)
            _current_event.set(weakref.ref(event))  # the table reads the event's partition (RocksDB)
            outputs, topics = opened.outputs, self.topics
            for out in self._fold(opened.batch, event).outgoing:
                # The common case (at least once, a known topic) appends to a batch: no coroutine per output.
                if outputs is None or outputs.add(topics[out.role], out.key, out.value, out.headers) is None:
                    await self._send(opened, out)
            opened.events.append(event)
            opened.latest[cast(bytes, event.key)] = event
            if len(opened.events) >= self.max_records:
                await self._close()

    async def close(self) -> None:
        """Close the open batch, if any, and let idle recordings leave the cache (the batch timer)."""
        async with self.lock:
            await self._close()
            self._trim()

    def _trim(self) -> None:
        idle_since_ms = self.clock_ms() - self.cache_idle_ms
        trim(self.cache, self.cache_limit, idle_since_ms=idle_since_ms, keep=self.in_flight)

    def snapshot(self, key: bytes) -> bytes | None:
        """Return the recording's newest snapshot sent to the state topic, None if it is unknown or forgotten.

        The table lags the state topic by the acks of a batch's outputs; until it holds the batch, its snapshot is
        answered from `in_flight`, so a reader who saw a snapshot on the topic never gets an older one here.
        """
        write = self.in_flight.get(key)
        if write is not None:
            return write.state.value
        stored = self.table.get(key)
        return None if stored is None else self.pipeline.describe(stored)

    async def _start(self, stream: faust.StreamT[bytes]) -> _Open:
        if self.generation != self.app.consumer_generation_id:  # a rebalance the signals did not tell us of
            self.generation = self.app.consumer_generation_id
            self.forget()
        producer = await self.app.maybe_start_producer()  # under exactly_once, the transaction manager
        outputs = None
        if not self.transactional:
            kafka = producer._ensure_producer()  # noqa: SLF001  # faust's aiokafka producer (it may be replaced)
            if self.outputs is None or self.outputs.producer is not kafka:
                self.outputs = PartitionBatches(kafka, linger_s=self.linger_s)
            outputs = self.outputs
        self.open = _Open(Batch(self.pipeline, self.cache, self.table.get), stream, producer, outputs, self.epoch)
        return self.open

    async def _close(self) -> None:
        opened, self.open = self.open, None
        if opened is None:
            return
        writes = opened.batch.writes()
        if self.epoch != opened.epoch:  # forgotten meanwhile: what it cached may be of a partition no longer ours
            self.forget()
        else:  # the query API lists what the state topic is about to show (else the rescan tells what is ours)
            for write in writes:
                self.local.note(write.key, opened.batch.changed[write.key])
        self.in_flight.sent(writes)
        self._trim()
        for write in writes:
            await self._send(opened, write.state)
        if opened.outputs is not None:  # every output so far is in one of these batches
            opened.acks.extend(opened.outputs.pending())
        previous, self.ending = self.ending, asyncio.ensure_future(self._end(self.ending, opened, writes))
        if previous is not None and previous.done():
            previous.result()  # a batch that failed to end crashes the agent (and the worker) here

    async def _end(self, previous: asyncio.Future[None] | None, opened: _Open, writes: list[Write]) -> None:
        try:
            if previous is not None:
                await previous
            await asyncio.gather(*opened.acks)
            for write in writes:
                _current_event.set(weakref.ref(opened.latest[write.key]))  # the changelog partition is the event's
                _store(self.table, write)
                self.in_flight.stored(write)
            for event in opened.events:
                await opened.stream.ack(event)
        except Exception as exc:  # nothing of this batch or later ones is acked: it is all read again
            await self.app.crash(exc)
            raise

    def _fold(self, batch: Batch, event: EventT[bytes]) -> Result:
        started = time.perf_counter()
        key, now_ms, message = cast(bytes, event.key), self.clock_ms(), event.message
        if message.topic == self.ticks_topic:
            result = batch.tick(key, now_ms=now_ms)
        else:
            headers = cast(list[tuple[str, bytes]], list(message.headers or ()))  # raw topics: (name, bytes) pairs
            position = (message.partition, message.offset)
            result = batch.callback(key, cast(bytes, event.value), headers, now_ms=now_ms, position=position)
        _observe(self.metrics, result, now_ms=now_ms)
        self.metrics.processing_seconds.observe(time.perf_counter() - started)
        return result

    async def _send(self, opened: _Open, out: Outgoing) -> None:
        topic, outputs = self.topics[out.role], opened.outputs
        if outputs is not None:
            while outputs.add(topic, out.key, out.value, out.headers) is None:  # the producer does not know the topic
                await outputs.wait_for_topic(topic)
            return
        # The producer's own send, not Topic.send: one record, no FutureMessage and sensor round trip around it.
        headers = list(out.headers) if out.headers else None
        opened.acks.append(await opened.producer.send(topic, out.key, out.value, None, None, headers))


@dataclass(slots=True)
class _Open:
    """A batch being filled: its records, their outputs' acks, and the latest record of each table key."""

    batch: Batch
    stream: faust.StreamT[bytes]
    producer: Any
    #: Where outputs go at least once; None under exactly_once (each is sent with `producer`, acked in `acks`).
    outputs: PartitionBatches | None
    epoch: int
    events: list[EventT[bytes]] = field(default_factory=list)
    acks: list[Awaitable[Any]] = field(default_factory=list)
    latest: dict[bytes, EventT[bytes]] = field(default_factory=dict)


def _store(recordings: Any, write: Write) -> None:
    if write.stored is None:
        recordings.pop(write.key, None)
    else:
        recordings[write.key] = write.stored


class _LocalView:
    """What this worker knows of the recordings it processed: when each needs a tick, its depth, status, last delivery.

    Not durable: after a restart or rebalance `rescan` makes the timer tick every local recording once, and each
    tick's result fills this in again.
    """

    def __init__(self) -> None:
        self.deadlines: dict[bytes, int] = {}
        self.buffered: dict[bytes, int] = {}
        self.status: dict[bytes, int] = {}
        self.last_delivery: dict[bytes, int] = {}
        self.rescan = True

    def clear(self) -> None:
        """Forget everything (a new assignment): the rescan's ticks fill it in again with what is ours."""
        for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
            known.clear()
        self.rescan = True

    def note(self, key: bytes, result: Result) -> None:
        """Remember what one result says of its recording (or forget a forgotten one)."""
        if not result.write:
            return
        if result.deadline_ms is None or result.status is None:
            for known in (self.deadlines, self.buffered, self.status, self.last_delivery):
                known.pop(key, None)
            return
        self.deadlines[key] = result.deadline_ms
        self.buffered[key] = result.buffered
        self.status[key] = result.status
        self.last_delivery[key] = result.last_delivery_ms

    def page(self, *, status: int | None, after: bytes, limit: int) -> list[bytes]:
        """Return up to `limit` sids after `after`, in order, of the given status (any if None)."""
        keys = sorted(key for key, known in self.status.items() if key > after and status in (None, known))
        return keys[:limit]

    def due(self, now_ms: int) -> list[bytes]:
        """Return (and unschedule) the recordings whose deadline has come."""
        keys = [key for key, due in self.deadlines.items() if due <= now_ms]
        for key in keys:
            del self.deadlines[key]
        return keys


def _observe(metrics: ProcessorMetrics, result: Result, *, now_ms: int) -> None:
    """Translate one result into the metrics."""
    if result.dead_letter is not None:
        metrics.dead_letter(result.dead_letter)
    elif result.callback is None:  # a tick
        metrics.observe_released(result.step)
    elif not result.write:
        metrics.skipped(event_type=result.callback.eventType)
    else:
        callback = result.callback
        event_time = event_ms(callback)
        metrics.observe(
            result.step, event_type=callback.eventType, now_ms=now_ms, event_ms=event_time, buffered=result.held
        )


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    To spin on every log record, the spinner sets the root logger to DEBUG whatever the log level: every debug call
    of faust and aiokafka then builds a record only to drop it (5 % of the worker's CPU).
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Configure the root logger without the spinner's handler."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)


def main(argv: list[str] | None = None) -> int:
    """Run one worker until it is stopped (SIGTERM/SIGINT)."""
    del argv
    settings = ProcessorSettings()
    app = create_app(settings)
    worker = QuietWorker(app, loglevel=settings.log_level)  # web host and port come from the app's config
    collector.settle()  # what is loaded by now lives as long as the process: no full collection scans it again
    worker.execute_from_commandline()
    return 0
