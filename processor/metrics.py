"""The processor's domain metrics, declared once against an injected registry and observed from the fold's facts.

Framework metrics come from faust's own sensor, not from here. Consumer lag per partition in particular: faust
exports its two halves, per `topic` and `partition`, and Prometheus subtracts them::

    <prefix>_topic_partition_end_offset - <prefix>_topic_partition_offset_commited

(the misspelling is faust's). Both gauges hold "next offset" positions (the high-water mark and the committed
position), so the difference is the number of records not yet committed. The agent enables them with
`setup_prometheus_sensors(app, registry=registry, name_prefix=FAUST_NAME_PREFIX)`, on the same registry as
`ProcessorMetrics.create(registry)`, which also serves that registry on faust's web server at /metrics.
Faust refreshes the end offset only as it hands fetched records to a stream, so a stalled agent shows a frozen
lag rather than a growing one: alert on commits standing still as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, assert_never, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from processor.core import codes
from processor.core.fold import Step
from processor.core.machine import event_ms
from processor.core.reorder import GapReason
from processor.results import Absent, Applied, DeadLettered, Forgotten, Result, Skipped, Ticked
from schemas.decode import RejectionKind
from schemas.derived import (
    DerivedEvent,
    FailedOver,
    RecorderLeft,
    RecordingErrored,
    SequenceGapDetected,
    SessionEnded,
    SessionExpired,
    SliceDiscontinuityDetected,
)

PREFIX = "recording_processor"
#: Faust's metric names, fixed rather than derived from PROCESSOR_APP_ID (faust's default), so dashboards hold.
FAUST_NAME_PREFIX = f"{PREFIX}_faust"
UNKNOWN = "unknown"

#: Vendor send time → processed: well under a second when healthy; NCS retries an unanswered callback for
#: minutes, and catching up after an outage takes up to hours, so the buckets span 50 ms to 1 h.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: One delivery through the fold and its sends: ~0.25 ms of CPU under faust (notes/performance.md), more
#: when sends wait for the broker, so the buckets span 0.1 ms to 1 s.
PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: A slice discontinuity is a recorder outage: a blip of under a second up to a long reconnect.
DISCONTINUITY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
#: Recordings last minutes to hours, a day at most.
SESSION_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)

#: exitStatus values with a documented meaning (0 normal, 1 abnormal); any other is one label, not many.
KNOWN_EXIT_STATUSES: Final = frozenset(codes.STATUS_BY_EXIT_STATUS)
#: Dead-letter kinds known in advance: the decoder's rejections and another product's records.
KNOWN_DEAD_LETTER_KINDS: Final = (*get_args(RejectionKind), "other_product")


@dataclass(frozen=True, slots=True)
class ProcessorMetrics:
    """Every domain metric of the processor. Labels are bounded: event_type, outcome, status, reason; never a sid.

    The agent sets or observes directly: `buffered` (after each delivery), `processing_seconds` (around each
    delivery, e.g. `with metrics.processing_seconds.time():`) and `sessions_expired` (per recording expired
    for inactivity). Everything else moves through the methods below.
    """

    callbacks: Counter
    duplicates: Counter
    out_of_order: Counter
    gaps: Counter
    late: Counter
    buffered: Gauge
    active_recordings: Gauge
    max_idle: Gauge
    failovers: Counter
    discontinuities: Counter
    discontinuity_seconds: Histogram
    session_seconds: Histogram
    sessions_ended: Counter
    leave_reasons: Counter
    fatal_errors: Counter
    dead_letters: Counter
    sessions_expired: Counter
    lag_seconds: Histogram
    processing_seconds: Histogram
    #: (event type's label, outcome) → its child of `callbacks`: `.labels()` takes a lock and builds tuples.
    _callbacks_by_label: dict[tuple[str, str], Any] = field(default_factory=dict)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ProcessorMetrics:
        """Declare the metrics in `registry` (a fresh one per app, so tests do not share counters)."""

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}_total", doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(f"{PREFIX}_{name}_seconds", doc, buckets=buckets, registry=registry)

        metrics = cls(
            callbacks=counter(
                "callbacks",
                "Deliveries by vendor event type and outcome (applied: in order, at once or after reordering).",
                ("event_type", "outcome"),
            ),
            duplicates=counter("duplicates_dropped", "Deliveries dropped as duplicates of a (uid, sequence) seen."),
            out_of_order=counter("out_of_order", "Deliveries held by the reorder buffer behind a missing sequence."),
            gaps=counter("sequence_gaps", "Holes in a uid's sequence given up on, by why.", ("reason",)),
            late=counter("late_events", "Deliveries applied after their place in the sequence had been skipped."),
            buffered=Gauge(
                f"{PREFIX}_reorder_buffered_callbacks",
                "Callbacks held in this worker's reorder buffers.",
                registry=registry,
            ),
            active_recordings=Gauge(
                f"{PREFIX}_active_recordings",
                "Recordings held by this worker, by status.",
                ["status"],
                registry=registry,
            ),
            max_idle=Gauge(
                f"{PREFIX}_open_recording_max_idle_seconds",
                "Time since the last delivery of this worker's most silent open (not ended) recording; 0 if none.",
                registry=registry,
            ),
            failovers=counter("failovers", "Recorder failovers (session_failover, once per new uid)."),
            discontinuities=counter("discontinuities", "Slice discontinuities: holes in a recorded track."),
            discontinuity_seconds=histogram(
                "discontinuity_length", "Length of each slice discontinuity.", DISCONTINUITY_BUCKETS
            ),
            session_seconds=histogram("session_duration", "First event to session_exit, per session.", SESSION_BUCKETS),
            sessions_ended=counter(
                "sessions_ended", "Sessions ended by session_exit, by exitStatus.", ("exit_status",)
            ),
            leave_reasons=counter(
                "recorder_leave_reasons", "recorder_leave reasons, one per leave-code bit.", ("reason",)
            ),
            fatal_errors=counter("fatal_errors", "cloud_recording_error callbacks of level 5 (fatal)."),
            dead_letters=counter("dead_letters", "Records sent to the dead-letter topic, by kind.", ("kind",)),
            sessions_expired=counter("sessions_expired", "Recordings expired after the inactivity timeout."),
            lag_seconds=histogram("end_to_end_lag", "Event time (sendts) to processed, per delivery.", LAG_BUCKETS),
            processing_seconds=histogram("processing", "Time to process one delivery.", PROCESSING_BUCKETS),
        )
        _zero_known_labels(metrics)
        return metrics

    def observe(self, step: Step, *, event_type: int, now_ms: int, event_ms: int, buffered: bool = False) -> None:
        """Record one delivery and what its step did.

        Args:
            step: What `fold.handle` returned for the delivery.
            event_type: The delivery's `eventType`.
            now_ms: When it was processed (wall clock).
            event_ms: Its event time (`sendts`); the lag is observed for every delivery but a duplicate.
            buffered: The reorder buffer held the delivery instead of releasing it at once (it still holds
                the delivery's sequence number after `handle`).
        """
        outcome = "duplicate" if step.duplicate else "late" if step.late else "applied"
        self._callback_counter(event_type, outcome).inc()
        if step.duplicate:
            self.duplicates.inc()
            return
        if buffered:
            self.out_of_order.inc()
        # The vendor's clock and ours differ: an event "from the future" counts as no lag.
        self.lag_seconds.observe(max(0, now_ms - event_ms) / 1000)
        self.observe_released(step)

    def observe_result(self, result: Result, *, now_ms: int) -> None:
        """Record what one input record did (the worker's path: a callback, a tick, a skip or a dead letter)."""
        match result:
            case Applied(callback=callback, step=step, held=held):
                self.observe(
                    step, event_type=callback.eventType, now_ms=now_ms, event_ms=event_ms(callback), buffered=held
                )
            case Ticked(step=step) | Forgotten(step=step):
                self.observe_released(step)
            case Skipped(callback=callback):
                self.skipped(event_type=callback.eventType)
            case DeadLettered(kind=kind):
                self.dead_letter(kind)
            case Absent():  # a tick of a forgotten sid: nothing released
                pass
            case _:
                assert_never(result)

    def observe_released(self, step: Step) -> None:
        """Record what a step applied and derived: the whole of a tick's or an end of input's step."""
        if step.late:
            self.late.inc(step.late)
        for event in step.derived:
            observer = _OBSERVERS.get(type(event))
            if observer is not None:
                observer(self, event)

    def skipped(self, *, event_type: int | None = None) -> None:
        """Count a delivery that belongs to no recording (another product, the console's check)."""
        self._callback_counter(event_type, "skipped").inc()

    def _callback_counter(self, event_type: int | None, outcome: str) -> Any:
        # Keyed by the label, not the number: a sender's unknown event types all share the `unknown` child.
        name = UNKNOWN if event_type is None else codes.EVENT_NAMES.get(event_type, UNKNOWN)
        child = self._callbacks_by_label.get((name, outcome))
        if child is None:
            child = self._callbacks_by_label[name, outcome] = self.callbacks.labels(event_type=name, outcome=outcome)
        return child

    def dead_letter(self, kind: str) -> None:
        """Count a record sent to the dead-letter topic: `Rejection.kind`, or the agent's own failure kind."""
        self.callbacks.labels(event_type=UNKNOWN, outcome="dead_letter").inc()
        self.dead_letters.labels(kind=kind).inc()

    def set_active_by_status(self, counts: Mapping[int, int]) -> None:
        """Set the active recordings per status code; every known status, and any seen before, absent is 0."""
        by_name = {_status_name(status): count for status, count in counts.items()}
        shown = {sample.labels["status"] for metric in self.active_recordings.collect() for sample in metric.samples}
        for name in shown | set(codes.STATUS_NAMES.values()) | set(by_name):
            self.active_recordings.labels(status=name).set(by_name.get(name, 0))

    def set_max_idle(self, status: Mapping[bytes, int], last_delivery_ms: Mapping[bytes, int], *, now_ms: int) -> None:
        """Set the silence of the most silent open recording from their status and last delivery (Unix ms) by sid."""
        # An open recording sends uploading_progress once a minute (spec, eventType 33): a long silence means
        # NCS stopped delivering to us, or the recording died without a session_exit.
        open_ms = [ms for key, ms in last_delivery_ms.items() if status.get(key) not in codes.TERMINAL_STATUSES]
        self.max_idle.set(max(0, now_ms - min(open_ms)) / 1000 if open_ms else 0)


def _zero_known_labels(metrics: ProcessorMetrics) -> None:
    """Export the known label values of rare counters at 0 from the start.

    A child born at its first increment is never seen at 0 by Prometheus, so rate() and increase() would miss
    that increment: a one-off dead letter, gap or abnormal exit would not show on the dashboard.
    """
    for kind in KNOWN_DEAD_LETTER_KINDS:
        metrics.dead_letters.labels(kind=kind)
    for reason in get_args(GapReason):
        metrics.gaps.labels(reason=reason)
    for exit_status in ("none", "other", *map(str, sorted(KNOWN_EXIT_STATUSES))):
        metrics.sessions_ended.labels(exit_status=exit_status)


def _status_name(status: int) -> str:
    return codes.STATUS_NAMES.get(status, f"status_{status}")


def _on_gap(metrics: ProcessorMetrics, event: SequenceGapDetected) -> None:
    metrics.gaps.labels(reason=event.reason).inc()


def _on_failover(metrics: ProcessorMetrics, event: FailedOver) -> None:
    metrics.failovers.inc()


def _on_discontinuity(metrics: ProcessorMetrics, event: SliceDiscontinuityDetected) -> None:
    metrics.discontinuities.inc()
    metrics.discontinuity_seconds.observe(event.gap_ms / 1000)


def _on_error(metrics: ProcessorMetrics, event: RecordingErrored) -> None:
    if event.fatal:
        metrics.fatal_errors.inc()


def _on_leave(metrics: ProcessorMetrics, event: RecorderLeft) -> None:
    for reason in event.reasons:
        # Bits nobody has named yet ("unknown_bits_<n>") would make one label value per combination.
        metrics.leave_reasons.labels(reason=UNKNOWN if reason.startswith("unknown_bits_") else reason).inc()


def _on_ended(metrics: ProcessorMetrics, event: SessionEnded) -> None:
    exit_status = event.summary.exit_status
    label = "none" if exit_status is None else str(exit_status) if exit_status in KNOWN_EXIT_STATUSES else "other"
    metrics.sessions_ended.labels(exit_status=label).inc()
    metrics.session_seconds.observe(event.summary.duration_ms / 1000)


def _on_expired(metrics: ProcessorMetrics, event: SessionExpired) -> None:
    metrics.sessions_expired.inc()


#: Derived event class → how it moves the metrics; a kind without an entry moves none.
_OBSERVERS: Final[Mapping[type[DerivedEvent], Callable[[ProcessorMetrics, Any], None]]] = {
    SequenceGapDetected: _on_gap,
    FailedOver: _on_failover,
    SliceDiscontinuityDetected: _on_discontinuity,
    RecordingErrored: _on_error,
    RecorderLeft: _on_leave,
    SessionEnded: _on_ended,
    SessionExpired: _on_expired,
}
