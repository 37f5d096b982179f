"""Benchmark result records and their writers: bench/results.json, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("aiokafka", "faust-streaming", "mode-streaming", "aiohttp", "orjson", "pydantic", "rocksdict")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number and what it is."""

    label: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """A figure set against its same-run baseline; `target` bounds the ratio, `limit` the figure itself."""

    name: str
    figure: Figure
    baseline: Figure
    higher_is_better: bool = True
    target: float | None = None
    limit: float | None = None

    @property
    def ratio(self) -> float:
        """Return figure ÷ baseline."""
        return self.figure.value / self.baseline.value if self.baseline.value else math.nan

    @property
    def target_text(self) -> str:
        """Return the target in words ("ratio ≥ 0.6", "< 100 ms"), or "" without one."""
        parts = []
        if self.target is not None:
            parts.append(f"ratio {'≥' if self.higher_is_better else '≤'} {self.target:g}")
        if self.limit is not None:
            parts.append(f"{'>' if self.higher_is_better else '<'} {self.limit:g} {self.figure.unit}")
        return ", ".join(parts)

    @property
    def met(self) -> bool | None:
        """Return whether every target holds (None without a target)."""
        checks = []
        if self.target is not None:
            checks.append(self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target)
        if self.limit is not None:
            value = self.figure.value
            checks.append(value > self.limit if self.higher_is_better else value < self.limit)
        return all(checks) if checks else None

    def as_json(self) -> dict[str, Any]:
        """Return the JSON form: figure, baseline, `<name>_ratio`, target and whether it is met."""
        return {
            "figure": _figure_json(self.figure),
            "baseline": _figure_json(self.baseline),
            f"{self.name}_ratio": _round(self.ratio),
            "higher_is_better": self.higher_is_better,
            "target": self.target_text or None,
            "met": self.met,
        }


@dataclass(slots=True)
class BenchResult:
    """What one benchmark measured: its comparisons, how it measured them, and facts worth keeping."""

    name: str
    title: str
    method: str
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """Return the JSON form of the whole benchmark."""
        return {
            "title": self.title,
            "method": self.method,
            "comparisons": {item.name: item.as_json() for item in self.comparisons},
            "notes": self.notes,
            "details": self.details,
            "seconds": round(self.seconds, 1),
        }


def environment(argv: list[str], *, quick: bool) -> dict[str, Any]:
    """Return the machine and version facts of this run, and the command that made it."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    jars = sorted((REPO / ".cache" / "kafka-jars").glob("kafka_2.13-*.jar"))
    return {
        "command": " ".join(["python -m bench", *argv]),
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "bench", "processor", "ingest", "schemas")),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "kafka": jars[0].stem.removeprefix("kafka_2.13-") if jars else None,
        "wrk": _first_line(["wrk", "--version"]) if shutil.which("wrk") else None,
    }


def write_all(results: list[BenchResult], env: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write results.json, results.md and results.png into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**env, "load_average_at_end": [round(load, 2) for load in os.getloadavg()]}
    paths = [out_dir / "results.json", out_dir / "results.md", out_dir / "results.png"]
    document = {"environment": env, "benchmarks": {result.name: result.as_json() for result in results}}
    paths[0].write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    paths[1].write_text(markdown(results, env))
    chart(results, paths[2])
    return paths


def markdown(results: list[BenchResult], env: dict[str, Any]) -> str:
    """Return the Markdown report: one table row per comparison, then each benchmark's method and notes."""
    lines = [
        "# Benchmarks",
        "",
        f"`{env['command']}` on {env['cpus']} × {env['cpu']}, Python {env['python']}, Kafka {env['kafka']}, "
        f"commit {str(env['git_commit'])[:10]}{' (dirty)' if env['git_dirty'] else ''}, {env['started_at']}; "
        f"load average {env['load_average_at_start']} at the start, {env['load_average_at_end']} at the end.",
        "",
        "| benchmark | figure | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for item in result.comparisons:
            met = {True: "yes", False: "**no**", None: ""}[item.met]
            lines.append(
                f"| {result.name} | {item.figure.label}: {_human(item.figure)} | {item.baseline.label}: "
                f"{_human(item.baseline)} | {item.ratio:.2f}× | {item.target_text} | {met} |"
            )
    for result in results:
        lines += ["", f"## {result.name}: {result.title}", "", result.method]
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def chart(results: list[BenchResult], path: Path) -> None:
    """Draw every comparison's ratio as a bar (log scale), its target as a mark, coloured by met or not."""
    import matplotlib  # a dev dependency, only needed to draw

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [(result.name, item) for result in results for item in result.comparisons]
    fig, axis = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.4))
    colours = {True: "#2e7d32", False: "#c62828", None: "#78909c"}
    for index, (_, item) in enumerate(rows):
        axis.barh(index, item.ratio, color=colours[item.met])
        text = f"{item.ratio:.2f}×   {_human(item.figure)} vs {_human(item.baseline)}"
        if item.limit is not None:
            text += f"   (limit {item.target_text})"
        axis.text(max(item.ratio, item.target or 0) * 1.08, index, text, va="center", fontsize=7)
        if item.target is not None:
            axis.plot([item.target, item.target], [index - 0.4, index + 0.4], color="black", linewidth=2)
    labels = [
        f"{name}: {item.name.replace('_', ' ')}{'' if item.higher_is_better else ' (lower is better)'}"
        for name, item in rows
    ]
    axis.set_yticks(range(len(rows)), labels, fontsize=8)
    axis.invert_yaxis()
    axis.set_xscale("log")
    ratios = [item.ratio for _, item in rows if item.ratio > 0] + [item.target for _, item in rows if item.target] or [
        1.0
    ]
    axis.set_xlim(min(ratios) / 2, max(ratios) * 20)  # room on the right for the figures' text
    axis.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axis.set_xlabel("figure ÷ same-run baseline (log scale); black mark = target; green met, red not, grey none")
    axis.set_title("make bench: each figure against its baseline, same machine, same run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_json(figure: Figure) -> dict[str, Any]:
    return {"label": figure.label, "value": _round(figure.value), "unit": figure.unit}


def _round(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, max(0, 3 - math.floor(math.log10(abs(value)))))


def _human(figure: Figure) -> str:
    value = figure.value
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {figure.unit}"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)  # noqa: S603, S607
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError:
        return None
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def log(message: str) -> None:
    """Print a progress line on stderr (stdout stays free for the summary)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
