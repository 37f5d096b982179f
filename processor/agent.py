"""The Faust worker: raw callbacks and ticks in, the pipeline's decisions out. Glue only: the logic is in pipeline.py,
the commit protocol (outputs acknowledged → table → input acked) in commit.py, Faust's internals in faust_internals.py.

Tables may only change inside the stream, so time reaches a recording as a *tick*: a timer sends a record keyed by
sid to the ticks topic, which is co-partitioned with the raw topic and read by the same agent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, cast

import aiohttp
import faust
from faust.types import EventT
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry

from kafkaio.partitions import partition_for
from processor import collector
from processor.commit import Committer
from processor.core.fold import RetentionPolicy
from processor.faust_internals import EventTable, QuietWorker, SafeRecoveryTableManager, deliver_eagerly, setup_sensors
from processor.listing import Gatherer, LocalPage, Query, Unavailable
from processor.localview import LocalView
from processor.metrics import FAUST_NAME_PREFIX, ProcessorMetrics
from processor.outputs import ProducerOutputs
from processor.pipeline import Batch, Known, Pipeline, Result
from processor.settings import ProcessorSettings

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
        consumer_group_instance_id=settings.group_instance_id,  # static membership when set (aiokafka's KIP-345)
        table_standby_replicas=settings.table_standby_replicas,
        topic_replication_factor=settings.topic_replication_factor,
        producer_linger=settings.producer_linger_ms / 1000,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        web_port=settings.web_port,
        TableManager=SafeRecoveryTableManager,  # faust's own loses input records after a recovery
        # On SIGTERM faust would wait for every record taken from the stream to be acked, but the open batch is
        # acked only when it ends, and its timer is stopped by then: the worker waited for the grace period's
        # SIGKILL. Not waiting, it commits what is acked and stops; the rest is read again after the restart.
        stream_wait_empty=False,
    )
    deliver_eagerly(app)  # faust makes four tasks per record to hand it to the agent; none when nothing waits
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
    local = LocalView()
    outputs = ProducerOutputs(
        app.maybe_start_producer,
        transactional=settings.processing_guarantee == "exactly_once",
        linger_s=settings.producer_linger_ms / 1000,
    )
    batches: Committer[EventT[bytes]] = Committer(
        pipeline,
        EventTable(recordings),
        fold=folder(settings.ticks_topic, metrics, clock_ms),
        open_outputs=outputs.open,
        topics={
            "events": settings.events_topic,
            "state": settings.state_topic,
            "alerts": settings.alerts_topic,
            "dlq": settings.dlq_topic,
        },
        note=local.note,
        stale=local.clear,  # read again what is ours
        generation=lambda: app.consumer_generation_id,
        crash=app.crash,
        max_records=settings.batch_max_records,
        cache_recordings=settings.state_cache_recordings,
        cache_idle_ms=settings.state_cache_idle_ms,
        clock_ms=clock_ms,
    )

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

    def known(key: bytes) -> Known | None:
        """Return what is stored of a local recording (None if nothing is)."""
        stored = batches.stored(key)
        return None if stored is None else pipeline.known(stored)

    def local_keys() -> list[bytes]:
        """Return the stored sids of the partitions this worker owns (a memory store keeps the others')."""
        mine, every = set(owned()), list(range(settings.partitions))
        stored = {*recordings, *batches.in_flight.keys()}
        return [key for key in stored if partition_for(key, every, every) in mine]

    @app.timer(settings.tick_interval_s)  # type: ignore[untyped-decorator]  # faust's timer decorator is untyped
    async def send_ticks() -> None:
        if not local.complete and ready():  # assigned and recovered: a tick only when one is due, never one each
            await local.fill(local_keys(), known)
        now_ms = clock_ms()
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

    def owned() -> list[int]:
        """Return the raw topic's partitions this worker processes (its active ones)."""
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.raw_topic)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Readiness: 200 once this worker's partitions are assigned and its table recovered, else 503; the
        group's generation and the raw partitions this worker owns in it."""
        if not ready():
            return web.json(NOT_READY, status=503, headers={"Retry-After": "1"})
        return web.json({"ready": True, "generation": app.consumer_generation_id, "partitions": owned()})

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

    def local_page(query: Query) -> LocalPage:
        """This worker's own page of `query`; Unavailable until it knows all its recordings after an assignment."""
        if not ready() or not local.complete:  # False from an assignment until it is filled
            raise Unavailable(f"{app.conf.canonical_url} is not ready: partitions or recordings not known yet")
        return LocalPage.of(query, local, batches.snapshot, generation=app.consumer_generation_id, partitions=owned())

    async def peer_get(url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        async with app.http_client.get(f"{url}/recordings/", params=params) as response:  # the app's session
            return response.status, await response.read()

    gatherer = Gatherer(str(app.conf.canonical_url), settings.partitions, local_page, peer_get, (aiohttp.ClientError,))

    @app.page("/recordings/")
    async def list_recordings(web: Any, request: Any) -> Any:
        """The group's recordings (scope=local: this worker's), by sid, `limit` after `after`, of `status` if given."""
        answer = await gatherer.respond(request.query, app.router.table_metadata(recordings.name))
        return web.json(answer.body, status=answer.status, headers=answer.headers)

    del process, close_batch, send_ticks, on_assigned, on_revoked, on_recovered, readyz, get_recording, list_recordings
    return app


def folder(
    ticks_topic: str, metrics: ProcessorMetrics, clock_ms: Callable[[], int]
) -> Callable[[Batch, EventT[bytes]], Result]:
    """Return how one input record is folded into a batch: a tick or a raw callback, then the metrics it says."""

    def fold(batch: Batch, event: EventT[bytes]) -> Result:
        started = time.perf_counter()
        key, now_ms, message = cast(bytes, event.key), clock_ms(), event.message
        if message.topic == ticks_topic:
            result = batch.tick(key, now_ms=now_ms)
        else:
            headers = cast(list[tuple[str, bytes]], list(message.headers or ()))  # raw topics: (name, bytes) pairs
            position = (message.partition, message.offset)
            result = batch.callback(key, cast(bytes, event.value), headers, now_ms=now_ms, position=position)
        metrics.observe_result(result, now_ms=now_ms)
        metrics.processing_seconds.observe(time.perf_counter() - started)
        return result

    return fold


def main(argv: list[str] | None = None) -> int:
    """Run one worker until it is stopped (SIGTERM/SIGINT)."""
    del argv
    settings = ProcessorSettings()
    app = create_app(settings)
    worker = QuietWorker(app, loglevel=settings.log_level)  # web host and port come from the app's config
    collector.settle()  # what is loaded by now lives as long as the process: no full collection scans it again
    worker.execute_from_commandline()
    return 0
