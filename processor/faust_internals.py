"""Every use of a non-public name of Faust, mode or aiokafka; no other module may touch one (ruff SLF001).

Pinned by tests/unit/processor/test_faust_internals.py (the versions below, and the shape of each name), so an
upgrade fails there, in one place. Pinned: faust-streaming 0.15.3, mode-streaming 0.7.1, aiokafka 0.14.0.

- `faust.streams._current_event` (ContextVar of a weakref to the event being processed): a table read or write
  goes to the partition of that event (the RocksDB store reads it; the changelog record is sent to it). Set by
  `EventTable`, since the commit protocol writes a batch's table values after the stream has moved on.
- `Producer._ensure_producer()` (faust's aiokafka driver): the aiokafka producer under Faust's, which
  `kafkaio.batches` appends outputs to (`kafka_producer`).
- The recovery override (`SeekBeforeResumeRecovery`, a copy of `Recovery.on_recovery_completed` in a safe order:
  faust-streaming issue #596, records lost after a table recovery, open at 0.15.3): `Recovery._set_recovery_ended`,
  `_is_changelog_tp`, `_wait`; `Consumer._thread` (the consumer thread) and its `_ensure_consumer()` (the aiokafka
  consumer in it); `App._fetcher`; `TableManager._recovery` (the property `recovery` is overridden to use ours).
- The sensor (`CachedPrometheusMonitor`): `PrometheusMonitor._metrics`, `_stream_label`, and the override of
  `_clear_partition_related_metrics`; its public hooks are overridden, calling `Monitor`'s (the grandparent's)
  versions directly, so they rely on PrometheusMonitor's adding nothing but its series.
- `QuietWorker`: the undocumented hook `faust.Worker.on_setup_root_logger` and its attribute `spinner`.
- The eager delivery (`EagerDeliveryConsumer`, installed by `deliver_eagerly`): faust's private drain loop
  `Consumer._drain_messages` hands each fetched record to the app by `self.wait_first(callback(message),
  self.suspend_flow.wait())` (the call shape is pinned by a hash of that method); the override of mode's public
  `Service.wait_first` relies on it being the consumer's only call with two awaitables and no timeout, and returns
  mode's `WaitResults` (defined in `mode.services`, not exported). The transport is replaced through the app's
  public `transport` setter by a subclass of the driver's `Transport` whose `Consumer` is ours.

Used in `kafkaio` (which may import neither `processor` nor Faust), pinned here too: aiokafka's undocumented
`AIOKafkaProducer.client.cluster.partitions_for_topic` (a sync lookup of known partitions; the documented
`partitions_for` is a coroutine, once per output) and `aiokafka.record.default_records.DefaultRecordBatchBuilder
.estimate_size_in_bytes`; `create_batch` and `send_batch` are documented public API.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Coroutine, Generator
from typing import Any

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor, setup_prometheus_sensors
from faust.streams import _current_event
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as kafka_driver
from faust.types import TP, EventT, StreamT
from faust.types.tuples import Message
from mode.services import WaitResults
from prometheus_client import CollectorRegistry


class EventTable:
    """A Faust table as the commit protocol uses it (`commit.Table`): reads and writes in an event's partition."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.get = table.get  # bound once: read for every record

    def focus(self, event: EventT[Any]) -> None:
        """Make `event` the one the next table reads and writes belong to (Faust's current event)."""
        _current_event.set(weakref.ref(event))

    def put(self, key: bytes, value: bytes | None) -> None:
        """Hold `value` for `key`, or delete the key when None."""
        if value is None:
            self.table.pop(key, None)
        else:
            self.table[key] = value


def kafka_producer(producer: Any) -> AIOKafkaProducer:
    """Return the aiokafka producer under Faust's (it may be replaced: ask again for each batch)."""
    kafka: AIOKafkaProducer = producer._ensure_producer()
    return kafka


class SeekBeforeResumeRecovery(Recovery):
    """Faust's table recovery, ending in an order that loses no input record (faust-streaming issue #596).

    When the tables are recovered, faust resumes the input partitions, seeks them to the committed offsets and only
    then resumes the flow, which clears every agent's queue. Records fetched while it seeks are queued, some
    processed, and the rest cleared: never processed, never fetched again, and a hole in the acknowledged offsets
    that stops the commits for good (a worker restarted after a crash lost ~1 % of its records, one run in five).
    Seeking first is not enough: while an input partition is paused only in faust's books, the Kafka client still
    fetches it, and faust drops what it returns. Here the input is paused in the Kafka client too, the queues are
    cleared, the input is sought to its committed offsets (to its beginning where nothing is committed: faust's seek
    leaves those where the dropped fetches left them), and only then resumed.
    """

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Call when active table recovery is completed (faust's own steps, in a safe order)."""
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        recovered = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if recovered:
            await asyncio.wait(recovered)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
            return
        inputs = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        client = consumer._thread  # the Kafka client runs in faust's consumer thread
        kafka = client._ensure_consumer()
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in inputs]

        async def pause() -> None:
            kafka.pause(*partitions)

        async def rewind_uncommitted() -> None:  # faust's seek skips a partition without a committed offset
            committed = {tp: await kafka.committed(tp) for tp in partitions}
            uncommitted = [tp for tp, offset in committed.items() if not offset]
            if uncommitted:
                await kafka.seek_to_beginning(*uncommitted)  # consumer_auto_offset_reset is "earliest"

        async def resume() -> None:
            kafka.resume(*partitions)

        await client.call_thread(pause)
        try:
            app.flow_control.resume()  # clears the agents' queues: nothing of this generation is in them
            if assignment:
                self.log.info("Seek stream partitions to committed offsets.")
                await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
                await self._wait(client.call_thread(rewind_uncommitted), timeout=app.conf.broker_request_timeout)
            consumer.resume_partitions(inputs)
        finally:
            await client.call_thread(resume)
        self.completed.set()
        consumer.resume_flow()
        await app._fetcher.maybe_start()  # faust's own step: make sure the fetcher runs
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class SafeRecoveryTableManager(TableManager):
    """Faust's table manager, recovering with `SeekBeforeResumeRecovery` (faust's own loses input records)."""

    @property
    def recovery(self) -> Recovery:
        """Recovery service used by this table manager."""
        if self._recovery is None:
            self._recovery = SeekBeforeResumeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class CachedPrometheusMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor exporting the same series, each labelled child kept once found.

    Faust's sensor calls `.labels(...)` (a lock, a tuple of strings, a dict lookup) three times per record and
    normalizes the stream's name on every event: ~13 % of the worker's CPU. The children it finds never change
    until faust clears the partition-related series at a rebalance, so they are kept here and dropped then.
    """

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        #: (metric name, label values) → labelled child of `metrics`.
        self._labelled: dict[tuple[str, Any], Any] = {}
        #: stream → its events counter (streams live as long as the app: never cleared).
        self._stream_events: dict[StreamT[Any], Any] = {}

    def _child(self, name: str, *values: Any) -> Any:
        child = self._labelled.get((name, values))
        if child is None:
            child = self._labelled[name, values] = getattr(self._metrics, name).labels(*values)
        return child

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        """Call before message is delegated to streams (faust's counters and read offset)."""
        super(PrometheusMonitor, self).on_message_in(tp, offset, message)
        metrics = self._metrics
        metrics.messages_received.inc()
        metrics.active_messages.inc()
        self._child("messages_received_per_topics", tp.topic).inc()
        self._child("messages_received_per_topics_partition", tp.topic, tp.partition).set(offset)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        """Call when stream starts processing an event."""
        state = super(PrometheusMonitor, self).on_stream_event_in(tp, offset, stream, event)
        self._metrics.total_events.inc()
        self._metrics.total_active_events.inc()
        counter = self._stream_events.get(stream)
        if counter is None:
            label = f"stream.{self._stream_label(stream)}.events"
            counter = self._stream_events[stream] = self._metrics.total_events_per_stream.labels(stream=label)
        counter.inc()
        return state

    def on_table_get(self, table: Any, key: Any) -> None:
        """Call when value in table is retrieved."""
        super(PrometheusMonitor, self).on_table_get(table, key)
        self._child("table_operations", f"table.{table.name}", self.KEYS_RETRIEVED).inc()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """Call when new value for key in table is set."""
        super(PrometheusMonitor, self).on_table_set(table, key, value)
        self._child("table_operations", f"table.{table.name}", self.KEYS_UPDATED).inc()

    def on_table_del(self, table: Any, key: Any) -> None:
        """Call when key in a table is deleted."""
        super(PrometheusMonitor, self).on_table_del(table, key)
        self._child("table_operations", f"table.{table.name}", self.KEYS_DELETED).inc()

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int, valsize: int) -> Any:
        """Call when message added to producer buffer."""
        self._child("topic_messages_sent", f"topic.{topic}").inc()
        return super(PrometheusMonitor, self).on_send_initiated(producer, topic, message, keysize, valsize)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """Track new topic partition end offset for monitoring lags."""
        super(PrometheusMonitor, self).track_tp_end_offset(tp, offset)
        self._child("topic_partition_end_offset", tp.topic, tp.partition).set(offset)

    def on_tp_commit(self, tp_offsets: Any) -> None:
        """Call when offset in topic partition is committed."""
        super(PrometheusMonitor, self).on_tp_commit(tp_offsets)
        for tp, offset in tp_offsets.items():
            self._child("topic_partition_offset_commited", tp.topic, tp.partition).set(offset)

    def _clear_partition_related_metrics(self) -> None:
        super()._clear_partition_related_metrics()  # removes the children: found again from now on
        self._labelled.clear()


def setup_sensors(app: faust.App, *, registry: CollectorRegistry, name_prefix: str) -> None:
    """Faust's `setup_prometheus_sensors` (its metrics, and /metrics serving `registry`), with the cached sensor."""
    setup_prometheus_sensors(app, registry=registry, name_prefix=name_prefix)
    monitor: Any = app.monitor
    app.monitor = CachedPrometheusMonitor(metrics=monitor._metrics)  # the metrics just declared


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    To spin on every log record, the spinner sets the root logger to DEBUG whatever the log level: every debug call
    of faust and aiokafka then builds a record only to drop it (5 % of the worker's CPU).
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Configure the root logger without the spinner's handler."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)


class _Started:
    """The rest of a coroutine whose first step has run and yielded `pending`, awaitable by a task.

    A task resumes it as it would have resumed the coroutine: `pending` (the future it waits on, or None for a bare
    yield) goes to the task first, then each resumption, or exception thrown in (a cancellation), goes to the
    coroutine, until it returns.
    """

    __slots__ = ("coroutine", "pending")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coroutine = coroutine
        self.pending = pending

    def __await__(self) -> Generator[Any, None, Any]:
        coroutine, pending = self.coroutine, self.pending
        while True:
            try:
                yield pending
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # thrown in by the task (a cancellation): the coroutine's to handle
                try:
                    pending = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coroutine.send(None)
                except StopIteration as stop:
                    return stop.value


class EagerDeliveryConsumer(kafka_driver.Consumer):
    """Faust's Kafka consumer, handing a record to the agents without four tasks when nothing makes it wait.

    Faust's drain loop delivers each fetched record by `wait_first(callback(message), suspend_flow.wait())`: four
    tasks (the callback, the suspension, the consumer's stopped and crashed events), a wait for the first, three
    cancelled: ~36 µs of CPU per record against ~2 µs here (in-process, 20,000 calls), whereas the callback
    (decode, put in the agents' queues) nearly always completes without waiting. The race is there for a callback
    that does wait (for the flow control during a rebalance, a full queue, the producer's buffer, the callback
    map's lock): a suspension of the flow cancels it, and the record is discarded (faust-streaming PR #223,
    "Discard message after rebalance").

    Here the callback's first step runs at once, in the drain loop; when it completes, the record is delivered and
    no task is made. When it waits, what remains of it is raced against the suspension exactly as faust races the
    whole callback. A callback completes in its first step only if it never waits, and then faust's race delivers
    it too (its task runs first and completes in its first step, whatever the suspension): delivery, discarding,
    read offsets, acks and commits are as faust's.
    """

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:  # noqa: ASYNC109  # mode's signature
        """mode's `wait_first`, without tasks for the drain loop's callback when it completes without waiting."""
        if timeout is not None or len(coros) != 2 or not isinstance(coros[0], Coroutine):
            return await super().wait_first(*coros, timeout=timeout)
        callback, suspended = coros
        try:
            pending = callback.send(None)
        except StopIteration as done:
            if isinstance(suspended, Coroutine):
                suspended.close()  # never started: nothing to cancel
            return WaitResults([], [], True) if self.should_stop else WaitResults([callback], [done.value], False)
        except BaseException:
            if isinstance(suspended, Coroutine):
                suspended.close()
            raise
        return await super().wait_first(_Started(callback, pending), suspended)


class EagerDeliveryTransport(kafka_driver.Transport):
    """Faust's Kafka transport, its consumer `EagerDeliveryConsumer`."""

    Consumer = EagerDeliveryConsumer


def deliver_eagerly(app: faust.App) -> None:
    """Give `app` the eager consumer: call before anything uses the app's transport (its topics, its consumer)."""
    app.transport = EagerDeliveryTransport(app.conf.broker_consumer, app)
