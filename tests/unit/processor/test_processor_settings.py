"""ProcessorSettings: read from PROCESSOR_* variables, frozen, errors naming the variable, the topics it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.settings import IngestSettings
from processor.core.reorder import ReorderPolicy
from processor.settings import ProcessorSettings, TopicPlan, explain, worker_environment


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> ProcessorSettings:
    for name, value in env.items():
        monkeypatch.setenv(f"PROCESSOR_{name.upper()}", value)
    return ProcessorSettings()


def test_defaults_follow_the_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert settings.app_id == "recording-processor"
    assert (settings.partitions, settings.store, settings.processing_guarantee) == (6, "memory://", "at_least_once")
    assert (settings.gap_timeout_ms, settings.max_buffered, settings.tick_interval_s) == (30_000, 256, 1.0)
    assert (settings.inactivity_timeout_ms, settings.ended_retention_ms) == (6 * 3_600_000, 3_600_000)
    assert (settings.web_host, settings.web_port, settings.log_level) == ("127.0.0.1", 6066, "INFO")
    assert (settings.web_bind, settings.topic_replication_factor) == ("127.0.0.1", 1)  # loopback unless told
    assert settings.data_dir == Path(".cache/processor-data")


def test_the_processor_reads_the_topic_the_ingest_writes_by_default() -> None:
    assert ProcessorSettings.model_fields["raw_topic"].default == IngestSettings.model_fields["raw_topic"].default


def test_every_setting_is_read_from_its_prefixed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(
        monkeypatch,
        bootstrap_servers="kafka:9092",
        partitions="12",
        store="rocksdb://",
        data_dir="/var/lib/processor",
        processing_guarantee="exactly_once",
        web_port="9000",
        log_level="debug",
        events_topic="other.events",
    )
    assert (settings.bootstrap_servers, settings.partitions, settings.store) == ("kafka:9092", 12, "rocksdb://")
    assert (settings.data_dir, settings.processing_guarantee) == (Path("/var/lib/processor"), "exactly_once")
    assert (settings.web_port, settings.log_level, settings.events_topic) == (9000, "DEBUG", "other.events")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("gap_timeout_ms", "0"),
        ("max_buffered", "-1"),
        ("tick_interval_s", "0"),
        ("inactivity_timeout_ms", "0"),
        ("partitions", "0"),
        ("store", "redis://"),
        ("processing_guarantee", "at_most_once"),
        ("web_port", "http"),
        ("log_level", "chatty"),
    ],
)
def test_a_bad_value_is_explained_with_the_variable_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        load(monkeypatch, **{name: value})
    assert explain(caught.value).startswith(f"PROCESSOR_{name.upper()}: ")


def test_two_roles_sharing_one_topic_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="different topics"):
        load(monkeypatch, ticks_topic="recording.callbacks.raw")


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    with pytest.raises(ValidationError):
        settings.partitions = 1  # type: ignore[misc]  # the point of the test


def test_the_reorder_policy_comes_from_the_two_reorder_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, gap_timeout_ms="5000", max_buffered="8")
    assert settings.reorder_policy == ReorderPolicy(gap_timeout_ms=5_000, max_buffered=8)


def test_default_reorder_settings_are_the_cores_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch).reorder_policy == ReorderPolicy()


def test_topic_specs_name_every_topic_once_with_the_configured_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = load(monkeypatch, partitions="4").topic_specs()
    assert [plan.name for plan in specs] == [
        "recording.callbacks.raw",
        "recording.processor.ticks",
        "recording.events",
        "recording.state",
        "recording.alerts",
        "recording.dlq",
    ]
    assert {plan.partitions for plan in specs} == {4}


def test_ticks_are_co_partitioned_with_raw_and_kept_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = {plan.name: plan for plan in load(monkeypatch, partitions="9").topic_specs()}
    raw, ticks = specs["recording.callbacks.raw"], specs["recording.processor.ticks"]
    assert ticks.partitions == raw.partitions == 9
    assert int(ticks.configs["retention.ms"]) <= 3_600_000


def test_the_state_topic_is_compacted_and_no_other_is(monkeypatch: pytest.MonkeyPatch) -> None:
    compacted = [plan.name for plan in load(monkeypatch).topic_specs() if plan.configs.get("cleanup.policy")]
    assert compacted == ["recording.state"]
    assert TopicPlan("recording.state", 6, {"cleanup.policy": "compact"}) in load(monkeypatch).topic_specs()


def test_batches_default_to_a_thousand_records_or_a_tenth_of_a_second_and_refuse_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load(monkeypatch)
    assert (settings.batch_max_records, settings.batch_within_ms) == (1000, 100)
    assert settings.state_cache_recordings == 100_000
    with pytest.raises(ValidationError) as error:
        load(monkeypatch, batch_max_records="0")
    assert explain(error.value).startswith("PROCESSOR_BATCH_MAX_RECORDS:")


def test_membership_is_dynamic_unless_an_instance_id_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch).group_instance_id is None
    assert load(monkeypatch, group_instance_id="recording-processor-1").group_instance_id == "recording-processor-1"
    with pytest.raises(ValidationError, match="group_instance_id"):
        load(monkeypatch, group_instance_id="")


@pytest.mark.parametrize(
    ("store", "given", "replicas"),
    [("rocksdb://", None, 1), ("memory://", None, 0), ("memory://", "2", 2), ("rocksdb://", "0", 0)],
)
def test_standbys_are_kept_where_they_help_unless_set(
    monkeypatch: pytest.MonkeyPatch, store: str, given: str | None, replicas: int
) -> None:
    extra = {"standby_replicas": given} if given is not None else {}
    assert load(monkeypatch, store=store, **extra).table_standby_replicas == replicas


def test_a_workers_environment_gives_it_exactly_these_settings_and_drops_stray_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ProcessorSettings(partitions=3, group_instance_id=None, web_port=7000)
    env = worker_environment(settings, {"PATH": "/bin", "PROCESSOR_STORE": "rocksdb://"})
    assert env["PATH"] == "/bin"
    assert "PROCESSOR_GROUP_INSTANCE_ID" not in env  # unset stays unset (never the string "None")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROCESSOR_GROUP_INSTANCE_ID", raising=False)
    assert ProcessorSettings() == settings


def test_the_worker_hands_its_instance_id_and_standbys_to_faust() -> None:
    from processor.agent import create_app

    static = create_app(ProcessorSettings(group_instance_id="recording-processor-1", store="rocksdb://")).conf
    assert (static.consumer_group_instance_id, static.table_standby_replicas) == ("recording-processor-1", 1)
    dynamic = create_app(ProcessorSettings()).conf
    assert (dynamic.consumer_group_instance_id, dynamic.table_standby_replicas) == (None, 0)
