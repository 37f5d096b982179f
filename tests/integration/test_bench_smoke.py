"""`make bench` keeps working: its broker benchmarks, in quick mode, on the session broker (no figure is asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import memory, rebuild, recovery, rolling, scale, throughput
from bench.context import Context
from bench.report import BenchResult, environment, write_all
from devenv.kafka import EmbeddedKafka

pytestmark = pytest.mark.kafka


def check_well_formed(result: BenchResult, *, signed: tuple[str, ...] = ()) -> None:
    """Every comparison has a positive figure and baseline and a finite positive `<name>_ratio`.

    A comparison whose name holds one of `signed` may have any finite figure: a difference of two readings that a
    quick run's small sizes can leave at or below zero.
    """
    document = json.loads(json.dumps(result.as_json()))
    assert document["method"]
    assert document["comparisons"]
    for name, item in document["comparisons"].items():
        assert item["baseline"]["value"] > 0, name
        assert item["figure"]["unit"] == item["baseline"]["unit"], name
        ratio = item[f"{name}_ratio"]
        assert math.isfinite(ratio), name
        if not any(part in name for part in signed):
            assert item["figure"]["value"] > 0, name
            assert ratio > 0, name


@pytest.mark.timeout(180)
def test_the_quick_processor_and_rebuild_benchmarks_report_well_formed_positive_figures(
    kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    ctx = Context(quick=True, workdir=tmp_path, bootstrap_servers=kafka.bootstrap_servers)

    results = [throughput.run(ctx), rebuild.run(ctx)]

    for result in results:
        check_well_formed(result)
    assert results[0].details["concurrent_recordings_per_worker"] > 0
    assert "worker_vs_straightforward_agent" in results[0].as_json()["comparisons"]  # the peer a user would write
    written = write_all(results, environment(["--quick"], quick=True), tmp_path / "out")
    assert [path.name for path in written] == ["results.json", "results.md", "results.png"]
    document = json.loads(written[0].read_text())
    assert set(document["benchmarks"]) == {"processor", "rebuild"}
    assert written[2].stat().st_size > 0


@pytest.mark.timeout(240)
def test_the_quick_memory_recovery_and_scale_benchmarks_report_well_formed_positive_figures(
    kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    ctx = Context(quick=True, workdir=tmp_path, bootstrap_servers=kafka.bootstrap_servers)

    # The memory figure is the RSS 500 more idle recordings add (~0.6 MB): memory the allocators hold may absorb it.
    check_well_formed(memory.run(ctx), signed=("_per_idle_recording_",))
    for result in (recovery.run(ctx), scale.run(ctx)):
        check_well_formed(result)


@pytest.mark.timeout(180)
def test_the_quick_rolling_restart_benchmark_reports_well_formed_positive_figures(
    kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    ctx = Context(quick=True, workdir=tmp_path, bootstrap_servers=kafka.bootstrap_servers)

    result = rolling.run(ctx)  # it checks the final states against a replay and the event ids itself

    check_well_formed(result)
    assert [step["signal"] for step in result.details["steps"]] == ["SIGTERM", "SIGTERM", "SIGKILL"]
