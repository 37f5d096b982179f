"""What every benchmark of one run shares: size (quick or full), a work directory, the broker, the raw records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from bench import brokerio, workload
from bench.report import log
from devenv.topics import TopicSpec


@dataclass(frozen=True, slots=True)
class RawTopic:
    """A raw topic holding a workload's deliveries, keyed by sid as the ingest writes them."""

    name: str
    workload: workload.Workload

    @property
    def records(self) -> int:
        """Return how many records the topic holds."""
        return len(self.workload.lines)


@dataclass(slots=True)
class Context:
    """One bench run: `quick` picks small sizes; `bootstrap_servers` is the run's one broker (None if unneeded)."""

    quick: bool
    workdir: Path
    bootstrap_servers: str | None = None
    seed: int = 7
    _raw: RawTopic | None = field(default=None, repr=False)

    def size(self, *, full: int, quick: int) -> int:
        """Return the size for this run."""
        return quick if self.quick else full

    @property
    def broker(self) -> str:
        """Return the broker's address (the caller needs one)."""
        if self.bootstrap_servers is None:
            raise RuntimeError("this benchmark needs the run's Kafka broker")
        return self.bootstrap_servers

    def raw_topic(self) -> RawTopic:
        """Return the run's raw topic of noisy deliveries, published on first use (processor and rebuild share it)."""
        if self._raw is None:
            records = self.size(full=50_000, quick=2_000)
            load = workload.noisy(records, seed=self.seed)
            name = brokerio.unique("raw")
            log(f"publishing {len(load.lines)} deliveries of {load.recordings} recordings to {name}")
            asyncio.run(self._publish(name, load.lines))
            self._raw = RawTopic(name, load)
        return self._raw

    async def _publish(self, name: str, lines: list[bytes]) -> None:
        await brokerio.create(self.broker, TopicSpec(name, brokerio.PARTITIONS))
        await brokerio.publish(self.broker, name, lines)
