"""The ingest's Prometheus metrics, declared once against an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from ingest.histograms import LoopHistogram

#: Publishing waits for an acks=all write on a healthy cluster (a few ms) and is cut off by the publish
#: timeout (5 s by default), so the buckets span 1 ms to 10 s.
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: NCS bodies are about 0.5-2 KiB; the ceiling is the default 256 KiB body limit.
BODY_BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144)


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    """Every metric of the ingest. Labels are bounded: provider, outcome, reason; never a sid."""

    requests: Counter
    publish_seconds: LoopHistogram
    body_bytes: LoopHistogram
    signature_failures: Counter
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        """Declare the metrics in `registry` (a fresh one per app, so tests do not share counters)."""
        return cls(
            requests=Counter(
                "ingest_requests_total",
                "Callback requests by provider and outcome.",
                ["provider", "outcome"],
                registry=registry,
            ),
            publish_seconds=LoopHistogram(
                "ingest_publish_duration_seconds",
                "Time from publish to the broker's acknowledgement (or failure).",
                ["provider"],
                buckets=PUBLISH_BUCKETS,
                registry=registry,
            ),
            body_bytes=LoopHistogram(
                "ingest_request_body_bytes",
                "Sizes of the callback bodies read.",
                ["provider"],
                buckets=BODY_BUCKETS,
                registry=registry,
            ),
            signature_failures=Counter(
                "ingest_signature_failures_total",
                "Callbacks refused for their signature: missing or mismatch.",
                ["provider", "reason"],
                registry=registry,
            ),
            in_flight=Gauge(
                "ingest_requests_in_flight",
                "Callback POSTs being handled: read, verified, waiting for the broker's acknowledgement.",
                registry=registry,
            ),
        )
