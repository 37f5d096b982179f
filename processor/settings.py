"""ProcessorSettings: the processor's whole configuration, read once from PROCESSOR_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from processor.core.reorder import DEFAULT_GAP_TIMEOUT_MS, DEFAULT_MAX_BUFFERED, ReorderPolicy

ENV_PREFIX = "PROCESSOR_"

HOUR_MS = 3_600_000
#: Ticks only matter while they are fresh: a tick older than this has been superseded by newer ones.
TICKS_RETENTION_MS = HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """One topic the processor needs: its name, partition count and topic-level configs."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict, hash=False)


class ProcessorSettings(BaseSettings):
    """Typed, frozen configuration of one processor worker."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1)
    #: Faust's app id: names the consumer group, the table changelogs and the default metric prefix.
    app_id: str = Field("recording-processor", min_length=1)
    #: What the ingest publishes (its INGEST_RAW_TOPIC): the two defaults must stay equal.
    raw_topic: str = Field("recording.callbacks.raw", min_length=1)
    #: Timer ticks, one per partition, so holes are skipped on time even when a partition is quiet.
    ticks_topic: str = Field("recording.processor.ticks", min_length=1)
    events_topic: str = Field("recording.events", min_length=1)
    #: Latest RecordingState per sid, compacted.
    state_topic: str = Field("recording.state", min_length=1)
    alerts_topic: str = Field("recording.alerts", min_length=1)
    dlq_topic: str = Field("recording.dlq", min_length=1)
    #: The raw topic's partition count: ticks are co-partitioned with it, so the same worker sees both.
    partitions: int = Field(6, ge=1)
    store: Literal["memory://", "rocksdb://"] = "memory://"
    #: Where a rocksdb store keeps its files.
    data_dir: Path = Path(".cache/processor-data")
    #: How long a hole in `sequence` is waited for before it is skipped and reported as a gap.
    gap_timeout_ms: int = Field(DEFAULT_GAP_TIMEOUT_MS, gt=0)
    #: Per recorder uid: callbacks held behind a hole before the hole is skipped at once.
    max_buffered: int = Field(DEFAULT_MAX_BUFFERED, gt=0)
    tick_interval_s: float = Field(1.0, gt=0)
    #: A recording without any callback for this long is expired (NCS sends progress every minute).
    inactivity_timeout_ms: int = Field(6 * HOUR_MS, gt=0)
    #: How long an ended recording is kept, so late and duplicate deliveries still find it.
    ended_retention_ms: int = Field(HOUR_MS, ge=0)
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    #: How long the group waits for a silent worker (one killed, say) before giving its partitions to others.
    #: Shorter means faster failover but more rebalances on a busy worker; Kafka's floor is 6 s by default. A static
    #: member (`group_instance_id`) is waited for this long too when it does not come back (a scale-down, a lost node).
    session_timeout_s: float = Field(30.0, ge=1)
    #: Static group membership (KIP-345): a worker restarted with the same id gets its partitions back at once, with
    #: no rebalance for the others, and it never leaves the group on a clean stop. In the StatefulSet, the pod name.
    #: Two live workers must never share one id (they fence each other), and a restarted one must keep its web URL
    #: (`web_host`, `web_port`): faust refuses a static member whose URL changed. None: dynamic membership.
    group_instance_id: str | None = Field(None, min_length=1)
    #: Standby replicas of each table partition on other workers (faust's `table_standby_replicas`). With RocksDB a
    #: standby keeps its copy and persisted offsets, so a promoted partition replays only the changelog's tail; the
    #: memory store keeps no offsets, so a promotion replays everything anyway and standbys only cost. None: 1 with
    #: RocksDB, 0 with the memory store.
    standby_replicas: int | None = Field(None, ge=0)
    #: The worker's web server (/metrics, /readyz, /recordings/) listens on this interface: 0.0.0.0 in a pod.
    web_bind: str = "127.0.0.1"
    #: The host other workers reach this one's web server at: Faust forwards /recordings/{sid}/ to the owner.
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    #: How long the producer waits to batch outputs: sending each record alone cost a third of the worker's CPU.
    #: Outputs are not awaited, so this delays delivery, never processing.
    producer_linger_ms: int = Field(5, ge=0, le=1000)
    #: The most input records the worker processes as one batch: their outputs are acknowledged together, then
    #: each changed recording is written to the table (and its snapshot sent) once.
    batch_max_records: int = Field(1000, ge=1, le=10_000)
    #: How long a batch waits to fill before it is processed anyway: a record waits at most this long (plus the
    #: producer's linger) before its derived events are sent.
    batch_within_ms: int = Field(100, ge=1, le=1000)
    #: Recordings kept live in memory between batches (the least recently changed beyond are read from the table
    #: again when needed), so a record does not load its recording from the stored bytes.
    state_cache_recordings: int = Field(100_000, ge=0)
    #: A live recording without a delivery for this long leaves that cache too: a recording sends about one
    #: callback a minute once running, so an idle one costs only its stored bytes.
    state_cache_idle_ms: int = Field(10_000, ge=0)
    #: Replicas of the topics Faust creates itself (the table's changelog, its leader topic) if they are missing.
    topic_replication_factor: int = Field(1, ge=1)
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(str.upper)] = "INFO"

    @model_validator(mode="after")
    def _distinct_topics(self) -> ProcessorSettings:
        names = [plan.name for plan in self.topic_specs()]
        if len(set(names)) != len(names):
            raise ValueError(f"the {ENV_PREFIX}*_TOPIC settings must name six different topics, got {names}")
        return self

    @property
    def table_standby_replicas(self) -> int:
        """Return the standby replicas faust keeps of each table partition (see `standby_replicas`)."""
        if self.standby_replicas is not None:
            return self.standby_replicas
        return 1 if self.store == "rocksdb://" else 0

    @property
    def reorder_policy(self) -> ReorderPolicy:
        """Return the reorder buffer's policy."""
        return ReorderPolicy(gap_timeout_ms=self.gap_timeout_ms, max_buffered=self.max_buffered)

    def topic_specs(self) -> list[TopicPlan]:
        """Return the topics the processor reads and writes (faust creates its own changelogs)."""
        return [
            TopicPlan(self.raw_topic, self.partitions),
            TopicPlan(self.ticks_topic, self.partitions, {"retention.ms": str(TICKS_RETENTION_MS)}),
            TopicPlan(self.events_topic, self.partitions),
            TopicPlan(self.state_topic, self.partitions, {"cleanup.policy": "compact"}),
            TopicPlan(self.alerts_topic, self.partitions),
            TopicPlan(self.dlq_topic, self.partitions),
        ]


def worker_environment(settings: ProcessorSettings, base: Mapping[str, str]) -> dict[str, str]:
    """Return `base` with its PROCESSOR_* variables replaced by those that give a worker exactly `settings`.

    A setting left unset (None) gets no variable: its default is None already.
    """
    kept = {name: value for name, value in base.items() if not name.startswith(ENV_PREFIX)}
    given = settings.model_dump(exclude_none=True)
    return kept | {f"{ENV_PREFIX}{name.upper()}": str(value) for name, value in given.items()}


def explain(error: ValidationError) -> str:
    """Return one line per invalid setting, naming the environment variable to fix."""
    lines = []
    for item in error.errors():
        field_name = str(item["loc"][0]).upper() if item["loc"] else ""
        name = f"{ENV_PREFIX}{field_name}" if field_name else "settings"
        lines.append(f"{name}: {item['msg']}")
    return "\n".join(lines)
