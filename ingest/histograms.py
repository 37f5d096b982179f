"""A labelled Prometheus histogram for code that runs on one event loop: prometheus_client's exposition, less work."""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class HistogramChild:
    """One label set's buckets: `observe` is two Python operations, without a lock or method layers."""

    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Count one observation (in the first bucket whose upper bound is not below it, as Prometheus does)."""
        self.sum += amount
        self.counts[bisect_left(self._bounds, amount)] += 1


class LoopHistogram(Collector):
    """A labelled histogram exposed exactly as `prometheus_client.Histogram` exposes one (tested).

    prometheus_client's observe takes a lock and walks the buckets through several method calls per observation
    (~1.5 µs); the ingest observes two histograms per request from the event loop's thread, where the scrape
    also runs, so nothing can interleave with an observation.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = [float(bound) for bound in buckets if bound != math.inf] + [math.inf]
        # prometheus_client's own spelling of each bound (`1.0`, `+Inf`), in the `le` label.
        self._les: list[str] = [floatToGoString(bound) for bound in self._bounds]  # type: ignore[no-untyped-call]
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> HistogramChild:
        """Return the child of these label values, created at its first use (as prometheus_client does)."""
        if len(values) != len(self._labelnames):
            raise ValueError(f"expected label values for {self._labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = HistogramChild(self._bounds)
        return child

    def describe(self) -> Iterable[Metric]:
        """Declare the metric's names to the registry (duplicates are refused there)."""
        return [Metric(self._name, self._documentation, "histogram")]

    def collect(self) -> Iterable[Metric]:
        """Return the buckets (cumulative), count, sum and creation time of every label set."""
        metric = Metric(self._name, self._documentation, "histogram")
        for values, child in self._children.items():
            labels = dict(zip(self._labelnames, values, strict=True))
            cumulative = 0
            for le, count in zip(self._les, child.counts, strict=True):
                cumulative += count
                metric.add_sample(f"{self._name}_bucket", {**labels, "le": le}, cumulative)
            metric.add_sample(f"{self._name}_count", labels, cumulative)
            metric.add_sample(f"{self._name}_sum", labels, child.sum)
            metric.add_sample(f"{self._name}_created", labels, child.created)
        return [metric]
