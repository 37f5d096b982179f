"""ProcessorMetrics: steps really folded by the core move the right metrics, with bounded labels only."""

from __future__ import annotations

import orjson
import pytest
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from processor.core.fold import RetentionPolicy, Step, Tracked, finish, handle, tick, track
from processor.core.machine import event_ms
from processor.core.reorder import ReorderPolicy
from processor.metrics import FAUST_NAME_PREFIX, ProcessorMetrics
from processor.pipeline import Applied, Pipeline, Ticked
from schemas.callbacks import Callback
from tests.unit.builders import SID, T0, body, callback, progress

P = "recording_processor_"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ProcessorMetrics:
    return ProcessorMetrics.create(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(P + name, labels)
    return 0.0 if found is None else found


def deliver(metrics: ProcessorMetrics, tracked: Tracked, delivery: Callback, *, lag_ms: int = 0) -> Step:
    """Do what the agent does for one delivery: handle it, then observe the step."""
    now_ms = event_ms(delivery) + lag_ms
    step = handle(tracked, delivery, now_ms=now_ms)
    held = delivery.payload.sequence in tracked.buffer.lanes[delivery.payload.uid].pending
    metrics.observe(step, event_type=delivery.eventType, now_ms=now_ms, event_ms=event_ms(delivery), buffered=held)
    return step


def test_an_in_order_delivery_is_counted_as_applied_under_its_vendor_name(registry, metrics):
    deliver(metrics, track(SID), progress(0), lag_ms=1_500)
    assert value(registry, "callbacks_total", event_type="uploading_progress", outcome="applied") == 1
    assert value(registry, "end_to_end_lag_seconds_count") == 1
    assert value(registry, "end_to_end_lag_seconds_sum") == 1.5
    assert value(registry, "out_of_order_total") == 0


def test_an_event_type_without_a_vendor_name_is_labelled_unknown(registry, metrics):
    deliver(metrics, track(SID), callback(99, 0, {"anything": 1}))
    assert value(registry, "callbacks_total", event_type="unknown", outcome="applied") == 1


def test_a_duplicate_is_counted_as_dropped_and_adds_no_lag(registry, metrics):
    tracked = track(SID)
    deliver(metrics, tracked, progress(0))
    step = deliver(metrics, tracked, progress(0), lag_ms=60_000)
    assert step.duplicate
    assert value(registry, "callbacks_total", event_type="uploading_progress", outcome="duplicate") == 1
    assert value(registry, "duplicates_dropped_total") == 1
    assert value(registry, "end_to_end_lag_seconds_count") == 1


def test_an_event_from_the_future_counts_as_no_lag(registry, metrics):
    deliver(metrics, track(SID), progress(0), lag_ms=-5_000)
    assert value(registry, "end_to_end_lag_seconds_sum") == 0
    assert value(registry, "end_to_end_lag_seconds_bucket", le="0.05") == 1


def test_a_held_delivery_is_out_of_order_then_a_timed_out_hole_is_a_gap_and_its_straggler_is_late(registry, metrics):
    tracked = track(SID)
    deliver(metrics, tracked, progress(0))
    deliver(metrics, tracked, progress(2))
    assert value(registry, "out_of_order_total") == 1
    assert value(registry, "callbacks_total", event_type="uploading_progress", outcome="applied") == 2

    metrics.observe_released(tick(tracked, now_ms=T0 + 2_000 + 30_000))
    assert value(registry, "sequence_gaps_total", reason="timeout") == 1

    step = deliver(metrics, tracked, progress(1))
    assert step.late == 1
    assert value(registry, "callbacks_total", event_type="uploading_progress", outcome="late") == 1
    assert value(registry, "late_events_total") == 1


def test_a_full_buffer_and_the_end_of_input_report_gaps_by_their_reason(registry, metrics):
    tracked = track(SID, ReorderPolicy(max_buffered=1))
    for sequence in (0, 3, 4, 7):
        deliver(metrics, tracked, progress(sequence))
    assert value(registry, "sequence_gaps_total", reason="buffer_full") == 1
    metrics.observe_released(finish(tracked))
    assert value(registry, "sequence_gaps_total", reason="end_of_input") == 1


def test_a_failover_is_counted_once_however_often_it_is_announced(registry, metrics):
    tracked = track(SID)
    deliver(metrics, tracked, callback(12, 0, {"newUid": 2002}))
    deliver(metrics, tracked, callback(12, 0, {"newUid": 2002}, uid="2002"))
    assert value(registry, "failovers_total") == 1


def test_a_slice_discontinuity_is_counted_and_its_length_observed_in_seconds(registry, metrics):
    details = {"startUtcMs": T0 + 7_000, "discontinueUtcMs": T0 + 2_000, "streamUid": "7", "trackType": "audio"}
    deliver(metrics, track(SID), callback(42, 0, details))
    assert value(registry, "discontinuities_total") == 1
    assert value(registry, "discontinuity_length_seconds_sum") == 5.0
    assert value(registry, "discontinuity_length_seconds_bucket", le="5.0") == 1
    assert value(registry, "discontinuity_length_seconds_bucket", le="2.0") == 0


@pytest.mark.parametrize(("level", "fatal"), [(4, 0), (5, 1)])
def test_only_a_level_5_error_counts_as_fatal(registry, metrics, level, fatal):
    details = {"module": 1, "errorLevel": level, "errorCode": 47, "stat": 1, "errorMsg": "upload failed"}
    deliver(metrics, track(SID), callback(1, 0, details))
    assert value(registry, "fatal_errors_total") == fatal


def test_each_leave_code_bit_counts_as_a_reason_and_unnamed_bits_share_one_label(registry, metrics):
    tracked = track(SID)
    deliver(metrics, tracked, callback(41, 0, {"leaveCode": 2 | 4}))
    deliver(metrics, tracked, callback(41, 1, {"leaveCode": 2 | 64}))
    deliver(metrics, tracked, callback(41, 2, {"leaveCode": 128}))
    assert value(registry, "recorder_leave_reasons_total", reason="sigint") == 2
    assert value(registry, "recorder_leave_reasons_total", reason="no_users") == 1
    assert value(registry, "recorder_leave_reasons_total", reason="unknown") == 2


@pytest.mark.parametrize(("exit_status", "label"), [(0, "0"), (1, "1"), (7, "other")])
def test_a_session_exit_counts_the_session_by_exit_status_and_observes_its_duration(
    registry, metrics, exit_status, label
):
    tracked = track(SID)
    deliver(metrics, tracked, callback(40, 0, {"status": 0}))
    deliver(metrics, tracked, callback(11, 1, {"exitStatus": exit_status}, sendts=T0 + 600_000))
    assert value(registry, "sessions_ended_total", exit_status=label) == 1
    assert value(registry, "session_duration_seconds_sum") == 600.0
    assert value(registry, "session_duration_seconds_count") == 1


def test_a_dead_letter_is_counted_by_kind_and_as_an_outcome(registry, metrics):
    metrics.dead_letter("not_json")
    metrics.dead_letter("invalid")
    metrics.dead_letter("invalid")
    assert value(registry, "dead_letters_total", kind="invalid") == 2
    assert value(registry, "dead_letters_total", kind="not_json") == 1
    assert value(registry, "callbacks_total", event_type="unknown", outcome="dead_letter") == 3


def test_a_skipped_delivery_is_counted_as_an_outcome(registry, metrics):
    metrics.skipped(event_type=3)
    metrics.skipped()
    assert value(registry, "callbacks_total", event_type="cloud_recording_status_update", outcome="skipped") == 1
    assert value(registry, "callbacks_total", event_type="unknown", outcome="skipped") == 1


def test_active_recordings_show_every_known_status_and_zero_the_ones_that_emptied(registry, metrics):
    metrics.set_active_by_status({4: 2, 20: 1, 99: 3})
    assert value(registry, "active_recordings", status="recorder_started") == 2
    assert value(registry, "active_recordings", status="exited_abnormally") == 1
    assert value(registry, "active_recordings", status="status_99") == 3
    assert registry.get_sample_value(P + "active_recordings", {"status": "not_started"}) == 0

    metrics.set_active_by_status({5: 1})
    assert value(registry, "active_recordings", status="first_file_uploaded") == 1
    for emptied in ("recorder_started", "exited_abnormally", "status_99"):
        assert registry.get_sample_value(P + "active_recordings", {"status": emptied}) == 0


def test_rare_counters_are_exported_at_zero_for_their_known_labels_before_any_increment(registry, metrics):
    zero = {
        "dead_letters_total": ("kind", ("not_json", "not_an_object", "invalid", "other_product")),
        "sequence_gaps_total": ("reason", ("timeout", "buffer_full", "end_of_input")),
        "sessions_ended_total": ("exit_status", ("0", "1", "other", "none")),
    }
    for name, (label, values) in zero.items():
        for known in values:
            assert registry.get_sample_value(P + name, {label: known}) == 0, (name, known)


def test_the_idle_gauge_shows_the_silence_of_the_most_silent_open_recording_and_ignores_ended_ones(registry, metrics):
    status = {b"open-a": 4, b"ended": 8, b"open-b": 5, b"failed": 20}
    last = {b"open-a": T0, b"ended": T0 - 3_600_000, b"open-b": T0 + 60_000, b"failed": T0 - 7_200_000}
    metrics.set_max_idle(status, last, now_ms=T0 + 600_000)
    assert value(registry, "open_recording_max_idle_seconds") == 600.0


def test_the_idle_gauge_is_zero_without_open_recordings(registry, metrics):
    metrics.set_max_idle({b"open": 4}, {b"open": T0}, now_ms=T0 + 5_000)
    metrics.set_max_idle({b"ended": 8}, {b"ended": T0}, now_ms=T0 + 600_000)
    assert registry.get_sample_value(P + "open_recording_max_idle_seconds") == 0


def test_the_pipeline_reports_a_recordings_last_delivery_for_the_idle_gauge_on_deliveries_and_ticks():
    pipeline = Pipeline(ReorderPolicy(), RetentionPolicy())
    delivered = pipeline.on_callback(None, SID.encode(), orjson.dumps(body(40, 0)), [], now_ms=T0 + 500)
    ticked = pipeline.on_tick(delivered.stored, SID.encode(), now_ms=T0 + 120_000)
    assert isinstance(delivered.result, Applied)
    assert isinstance(ticked.result, Ticked)
    assert (delivered.result.last_delivery_ms, ticked.result.last_delivery_ms) == (T0 + 500, T0 + 500)


def exercise(metrics: ProcessorMetrics) -> None:
    """Move every metric with a label at least once."""
    tracked = track(SID, ReorderPolicy(max_buffered=1))
    for delivery in (
        callback(12, 0, {"newUid": 2002}),
        callback(41, 1, {"leaveCode": 2}),
        callback(11, 2, {"exitStatus": 0}),
        progress(5),
        progress(7),
    ):
        deliver(metrics, tracked, delivery)
    metrics.dead_letter("invalid")
    metrics.skipped(event_type=33)
    metrics.set_active_by_status({4: 1})


def test_each_kind_of_result_is_counted_where_it_belongs(registry, metrics):
    pipeline = Pipeline(ReorderPolicy(), RetentionPolicy())
    applied = pipeline.on_callback(None, SID.encode(), orjson.dumps(body(40, 0)), [], now_ms=T0)
    metrics.observe_result(applied.result, now_ms=T0)
    dead = pipeline.on_callback(None, b"x", b"{not json", [], now_ms=T0)
    metrics.observe_result(dead.result, now_ms=T0)
    check = body(40, 1)
    check["payload"]["cname"] = "test_webhook"
    skipped = pipeline.on_callback(None, b"y", orjson.dumps(check), [], now_ms=T0)
    metrics.observe_result(skipped.result, now_ms=T0)
    metrics.observe_result(pipeline.on_tick(None, b"z", now_ms=T0).result, now_ms=T0)  # absent: nothing counted
    total = "callbacks_total"
    assert value(registry, total, event_type="recorder_started", outcome="applied") == 1
    assert value(registry, total, event_type="unknown", outcome="dead_letter") == 1
    assert value(registry, "dead_letters_total", kind="not_json") == 1
    assert value(registry, total, event_type="recorder_started", outcome="skipped") == 1


def test_no_metric_is_labelled_by_recording_channel_or_user(registry, metrics):
    exercise(metrics)
    labels = {name for family in registry.collect() for sample in family.samples for name in sample.labels}
    assert labels  # the exercise did reach labelled metrics
    assert not labels & {"sid", "cname", "uid"}


def test_every_metric_is_named_after_the_processor(registry, metrics):
    exercise(metrics)
    names = {family.name for family in registry.collect()}
    assert all(name.startswith(P) for name in names), names


@pytest.mark.parametrize("faust_prefix", [FAUST_NAME_PREFIX, "recording_processor"])
def test_faust_sensor_metrics_fit_in_the_same_registry(registry: CollectorRegistry, faust_prefix: str) -> None:
    ProcessorMetrics.create(registry)
    FaustMetrics.create(registry, faust_prefix)
    names = {family.name for family in registry.collect()}
    assert {f"{faust_prefix}_topic_partition_end_offset", f"{faust_prefix}_topic_partition_offset_commited"} <= names
