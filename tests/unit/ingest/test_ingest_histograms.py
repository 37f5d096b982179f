"""The ingest's event-loop histogram is exposed exactly as prometheus_client's Histogram is."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ingest.histograms import LoopHistogram
from ingest.metrics import BODY_BUCKETS, PUBLISH_BUCKETS

observations = st.lists(st.tuples(st.sampled_from(["agora", "anyrtc"]), st.floats(0, 1e6)), max_size=30)


def exposition(registry: CollectorRegistry) -> str:
    # The creation times differ by when each was made: compare everything else.
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 <time>", generate_latest(registry).decode())


@pytest.mark.parametrize("buckets", [PUBLISH_BUCKETS, BODY_BUCKETS, (1, 2, float("inf"))])
@given(observed=observations)
def test_the_exposition_is_the_one_of_a_prometheus_client_histogram_with_the_same_observations(
    buckets: tuple[float, ...], observed: list[tuple[str, float]]
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop_histogram = LoopHistogram("x_seconds", "Help.", ["provider"], buckets=buckets, registry=ours)
    histogram = Histogram("x_seconds", "Help.", ["provider"], buckets=buckets, registry=theirs)
    for provider, value in observed:
        loop_histogram.labels(provider).observe(value)
        histogram.labels(provider).observe(value)
    assert exposition(ours) == exposition(theirs)


def test_its_names_are_taken_in_the_registry() -> None:
    registry = CollectorRegistry()
    LoopHistogram("x_seconds", "Help.", ["provider"], buckets=(1,), registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram("x_seconds", "Help.", ["provider"], registry=registry)


def test_label_values_must_match_the_label_names() -> None:
    histogram = LoopHistogram("x_seconds", "Help.", ["provider"], buckets=(1,), registry=CollectorRegistry())
    with pytest.raises(ValueError, match="label values"):
        histogram.labels("agora", "extra")
