"""The framework internals the worker relies on (processor/faust_internals.py): versions and shapes, pinned.

An upgrade of faust-streaming, mode-streaming or aiokafka fails here first. Then read the new release's code for
each name listed in processor/faust_internals.py, adapt, and only then move the pins.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import textwrap
from contextvars import ContextVar
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.cluster import ClusterMetadata
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from faust.app.base import App
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import PrometheusMonitor
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers import aiokafka as driver

from processor import faust_internals
from processor.faust_internals import (
    CachedPrometheusMonitor,
    EagerDeliveryConsumer,
    EagerDeliveryTransport,
    QuietWorker,
    SeekBeforeResumeRecovery,
)

PINNED = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}

#: sha256 of faust's `Recovery.on_recovery_completed` source, which `SeekBeforeResumeRecovery` copies and reorders
#: (faust-streaming issue #596): a change upstream means the copy must be made again.
RECOVERY_COMPLETED_SHA256 = "895e7c415a4d137997ea0e6c04f0c180d3c783cd6ef18a977a14338ca1073b59"
#: sha256 of faust's `Consumer._drain_messages` source, whose per-record `wait_first` call `EagerDeliveryConsumer`
#: intercepts: a change upstream means the interception must be checked again.
DRAIN_MESSAGES_SHA256 = "8f35dd7a11144daa6ec9a3739a497b03a9dd6b57cca18aa861bb4a549400fc68"


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def names(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize(("package", "version"), PINNED.items())
def test_the_installed_framework_is_the_pinned_version(package: str, version: str) -> None:
    assert importlib.metadata.version(package) == version


def test_faust_keeps_the_current_event_in_a_context_variable_of_weak_references() -> None:
    from faust.streams import _current_event, current_event

    assert isinstance(_current_event, ContextVar)
    assert names(current_event) == []  # the public reader of the same variable


def test_faust_s_kafka_driver_exposes_its_aiokafka_producer_and_consumer() -> None:
    assert names(driver.Producer._ensure_producer) == ["self"]
    assert inspect.signature(driver.Producer._ensure_producer).return_annotation in (
        AIOKafkaProducer,
        "AIOKafkaProducer",
    )
    assert issubclass(driver.Consumer, ThreadDelegateConsumer)
    assert "_thread" in ThreadDelegateConsumer.__annotations__
    assert names(driver.AIOKafkaConsumerThread._ensure_consumer) == ["self"]
    assert names(driver.AIOKafkaConsumerThread.call_thread) == ["self", "fun", "args", "kwargs"]


def test_the_recovery_override_matches_faust_s_recovery() -> None:
    assert parameters(SeekBeforeResumeRecovery.on_recovery_completed) == parameters(Recovery.on_recovery_completed)
    assert names(Recovery._set_recovery_ended) == ["self"]
    assert names(Recovery._is_changelog_tp) == ["self", "tp"]
    assert names(Recovery._wait) == ["self", "coro", "timeout"]
    init = inspect.getsource(Recovery.__init__)
    for attribute in ("actives_for_table", "standbys_for_table", "tables", "completed"):
        assert f"self.{attribute} " in init or f"self.{attribute}:" in init, attribute
    assert hasattr(App, "_fetcher")
    assert "_recovery" in TableManager.__annotations__
    assert isinstance(inspect.getattr_static(TableManager, "recovery"), property)


def test_faust_s_recovery_completion_is_the_one_our_override_copies() -> None:
    source = textwrap.dedent(inspect.getsource(Recovery.on_recovery_completed))
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == RECOVERY_COMPLETED_SHA256, digest


def test_the_cached_sensor_overrides_hooks_faust_s_sensor_has_with_the_same_parameters() -> None:
    assert names(PrometheusMonitor.__init__) == ["self", "metrics", "kwargs"]
    assert "self._metrics = metrics" in inspect.getsource(PrometheusMonitor.__init__)
    assert names(PrometheusMonitor._stream_label) == ["self", "stream"]
    overridden = [name for name in vars(CachedPrometheusMonitor) if name.startswith(("on_", "track_", "_clear"))]
    assert len(overridden) == 9
    for name in overridden:
        assert names(getattr(CachedPrometheusMonitor, name)) == names(getattr(PrometheusMonitor, name)), name
        if not name.startswith("_"):  # the hooks call Monitor's own, skipping PrometheusMonitor's
            assert names(getattr(Monitor, name)) == names(getattr(PrometheusMonitor, name)), name
    for constant in ("KEYS_RETRIEVED", "KEYS_UPDATED", "KEYS_DELETED"):
        assert hasattr(PrometheusMonitor, constant)


def test_the_quiet_worker_overrides_faust_s_root_logger_hook() -> None:
    assert names(QuietWorker.on_setup_root_logger) == names(faust.Worker.on_setup_root_logger)
    assert names(faust.Worker.on_setup_root_logger) == ["self", "logger", "level"]
    assert "spinner" in faust.Worker.__annotations__


def test_the_aiokafka_names_kafkaio_relies_on_keep_their_shapes() -> None:
    assert names(AIOKafkaProducer.create_batch) == ["self"]  # documented
    assert parameters(AIOKafkaProducer.send_batch)[1:] == [  # documented
        ("batch", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("topic", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("partition", inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.empty),
    ]
    assert "self.client = AIOKafkaClient(" in inspect.getsource(AIOKafkaProducer.__init__)  # undocumented
    assert names(ClusterMetadata.partitions_for_topic) == ["self", "topic"]
    assert names(DefaultRecordBatchBuilder.estimate_size_in_bytes) == ["key", "value", "headers"]


def test_every_private_name_the_door_uses_is_listed_in_its_docstring() -> None:
    listed = faust_internals.__doc__ or ""
    for name in (
        "_current_event",
        "_ensure_producer",
        "_set_recovery_ended",
        "_is_changelog_tp",
        "_wait",
        "_thread",
        "_ensure_consumer",
        "_fetcher",
        "_recovery",
        "_metrics",
        "_stream_label",
        "_clear_partition_related_metrics",
        "on_setup_root_logger",
        "#596",
    ):
        assert name in listed, name


def test_faust_s_drain_loop_delivers_each_record_by_the_race_the_eager_consumer_intercepts() -> None:
    from faust.transport.consumer import Consumer
    from mode import Service
    from mode.services import WaitResults

    source = textwrap.dedent(inspect.getsource(Consumer._drain_messages))
    assert hashlib.sha256(source.encode()).hexdigest() == DRAIN_MESSAGES_SHA256
    assert "await self.wait_first(\n" in source
    assert "callback(message), self.suspend_flow.wait()\n" in source
    consumer_source = inspect.getsource(Consumer) + inspect.getsource(driver.Consumer)
    assert consumer_source.count("self.wait_first(") == 1  # the consumer's only race: the drain loop's
    assert parameters(EagerDeliveryConsumer.wait_first) == parameters(Service.wait_first)
    assert WaitResults._fields == ("done", "results", "stopped")
    assert "def should_stop" in inspect.getsource(Service)


def test_the_eager_transport_is_faust_s_kafka_transport_with_our_consumer() -> None:
    assert issubclass(EagerDeliveryTransport, driver.Transport)
    assert issubclass(EagerDeliveryConsumer, driver.Consumer)
    assert "self.Consumer(self, callback=callback" in inspect.getsource(driver.Transport.create_consumer)
    assert isinstance(inspect.getattr_static(App, "transport"), property)
    assert inspect.getattr_static(App, "transport").fset is not None  # public setter
    assert names(driver.Transport.__init__) == ["self", "args", "kwargs"]
