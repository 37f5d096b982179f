"""The Faust worker: raw callbacks and ticks in, the pipeline's decisions out. Glue only: the logic is in pipeline.py.

Tables may only change inside the stream, so time reaches a recording as a *tick*: a timer sends a record keyed by
sid to the ticks topic, which is co-partitioned with the raw topic and read by the same agent.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry

from processor.core.fold import RetentionPolicy
from processor.core.machine import event_ms
from processor.metrics import FAUST_NAME_PREFIX, ProcessorMetrics
from processor.pipeline import Pipeline, Result
from processor.recovery import SafeRecoveryTableManager
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
    outputs = {
        role: app.topic(name, **raw_codec)
        for role, name in (
            ("events", settings.events_topic),
            ("state", settings.state_topic),
            ("alerts", settings.alerts_topic),
            ("dlq", settings.dlq_topic),
        )
    }
    recordings = app.Table("recordings", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    retention = RetentionPolicy(settings.inactivity_timeout_ms, settings.ended_retention_ms)
    pipeline = Pipeline(settings.reorder_policy, retention)
    registry = registry or CollectorRegistry()
    metrics = ProcessorMetrics.create(registry)
    # Faust's own sensor: framework metrics (per-partition end and committed offsets give consumer lag) and
    # the /metrics page on the worker's web server, for ours too (same registry).
    setup_prometheus_sensors(app, registry=registry, name_prefix=FAUST_NAME_PREFIX)
    local = _LocalView()

    # A crashed agent must stop the worker (to be restarted), never leave a live process that processes nothing.
    @app.agent(source, name="recordings", supervisor_strategy=CrashingSupervisor)
    async def process(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            key, now_ms = event.key, clock_ms()
            if event.message.topic == settings.ticks_topic:
                result = pipeline.on_tick(recordings.get(key), key, now_ms=now_ms)
            else:
                message = event.message
                headers, position = list(message.headers or ()), (message.partition, message.offset)
                result = pipeline.on_callback(
                    recordings.get(key), key, event.value, headers, now_ms=now_ms, position=position
                )
            # Outputs are queued before the table write: faust flushes both before committing the input offset,
            # and a changelog record must never be durable without the events it stands for (after a crash the
            # replayed delivery would be a duplicate, and its events would be lost).
            for out in result.outgoing:
                await outputs[out.role].send(key=out.key, value=out.value, headers=list(out.headers))
            _store(recordings, key, result)
            local.note(key, result)
            _observe(metrics, result, now_ms=now_ms)

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
        local.rescan = True

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
        stored = recordings.get(sid.encode())
        if stored is None:
            return web.json({"error": f"unknown sid {sid}"}, status=404)
        return web.bytes(pipeline.describe(stored), content_type="application/json")

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
        states = [json.loads(pipeline.describe(recordings[key])) for key in keys]
        following = keys[-1].decode() if len(keys) == size else None
        return web.json({"recordings": states, "next": following})

    del process, send_ticks, on_assigned, readyz, get_recording, list_recordings  # registered with the app
    return app


def _store(recordings: Any, key: bytes, result: Result) -> None:
    if not result.write:
        return
    if result.stored is None:
        recordings.pop(key, None)
    else:
        recordings[key] = result.stored


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
    worker.execute_from_commandline()
    return 0
