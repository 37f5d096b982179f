"""Render the dashboard's main panels from a Prometheus server into one PNG, without Grafana (matplotlib).

Run it by path: `python deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --out docs/dashboard.png`
(the last hour by default; `--start`/`--end` take Unix seconds). Each panel's queries go to /api/v1/query_range
exactly as the dashboard holds them, and their `legendFormat` names the lines.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

DASHBOARD = Path(__file__).resolve().with_name("recording-callbacks.json")
#: The panels of the picture, in reading order: ingest RED, processor throughput and lag, the recordings, errors.
MAIN_PANELS = (1, 3, 4, 5, 10, 11, 12, 14, 18)
COLUMNS = 3
#: Points per line at most: enough for a readable curve, few enough for a quick query.
POINTS = 300
#: Grafana units → (scale, axis suffix) for the y axis.
UNITS = {"percentunit": (100.0, "%"), "s": (1.0, "s"), "reqps": (1.0, "req/s"), "ops": (1.0, "/s")}
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")

#: One line: its legend, times (Unix seconds) and values.
Series = tuple[str, list[float], list[float]]


def load_panels(dashboard: Path, ids: Sequence[int] = MAIN_PANELS) -> list[dict[str, Any]]:
    """Return the dashboard's panels of these ids, in that order (rows' nested panels included)."""
    found: dict[int, dict[str, Any]] = {}
    for panel in json.loads(dashboard.read_text())["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found[inner["id"]] = inner
    missing = [pid for pid in ids if pid not in found]
    if missing:
        raise ValueError(f"{dashboard} has no panel with id {missing}")
    return [found[pid] for pid in ids]


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Fill a Grafana legendFormat (`{{label}}`) from a series' labels."""
    return LEGEND.sub(lambda match: labels.get(match.group(1), ""), fmt).strip() or json.dumps(labels)


def query_range(prometheus: str, expr: str, *, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Return the matrix of one range query (raises on an error answer)."""
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus.rstrip('/')}/api/v1/query_range?{query}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  # the operator's Prometheus URL
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def panel_series(prometheus: str, panel: dict[str, Any], *, start: float, end: float, step: float) -> list[Series]:
    """Return every line of a panel: (legend, times, values)."""
    scale, _ = UNITS.get(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), (1.0, ""))
    lines: list[Series] = []
    for target in panel.get("targets", []):
        for series in query_range(prometheus, target["expr"], start=start, end=end, step=step):
            times = [float(at) for at, _ in series["values"]]
            values = [float(value) * scale for _, value in series["values"]]
            lines.append((legend(target.get("legendFormat", ""), series["metric"]), times, values))
    return lines


def draw(axes: Axes, panel: dict[str, Any], lines: list[Series]) -> None:
    """Draw one panel's lines on its axes, Grafana-like: title, unit, legend, UTC clock."""
    _, suffix = UNITS.get(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""), (1.0, ""))
    axes.set_title(panel["title"], fontsize=10, loc="left")
    # Lines at 0 throughout (every status, every known kind) would bury the ones that moved; Grafana's
    # "hide series with only zeros" does the same.
    shown = [line for line in lines if any(value != 0 for value in line[2])]
    for name, times, values in sorted(shown, key=lambda line: line[0]):
        axes.plot(times, values, linewidth=1.3, label=name)
    if not shown:
        note = "all zero" if lines else "no data"
        axes.text(0.5, 0.5, note, ha="center", va="center", transform=axes.transAxes, color="grey")
    finite = [value for _, _, values in lines for value in values if math.isfinite(value)]
    if finite and min(finite) >= 0:
        axes.set_ylim(bottom=0)
    axes.set_ylabel(suffix, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda at, _: f"{datetime.fromtimestamp(at, UTC):%H:%M:%S}"))
    axes.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    if shown:
        axes.legend(fontsize=6, loc="upper left", ncol=2 if len(shown) > 4 else 1, framealpha=0.6)


def render(prometheus: str, out: Path, *, start: float, end: float, dashboard: Path = DASHBOARD) -> Path:
    """Query the main panels over [start, end] and write them as one PNG; return its path."""
    panels = load_panels(dashboard)
    step = max(1.0, (end - start) / POINTS)
    rows = math.ceil(len(panels) / COLUMNS)
    figure, grid = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3.4 * rows), squeeze=False)
    for axes, panel in zip(grid.flat, panels, strict=False):
        draw(axes, panel, panel_series(prometheus, panel, start=start, end=end, step=step))
    for axes in list(grid.flat)[len(panels) :]:
        axes.set_visible(False)
    title = json.loads(dashboard.read_text())["title"]
    span = f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} to {datetime.fromtimestamp(end, UTC):%H:%M:%S} UTC"
    figure.suptitle(f"{title} ({span})", fontsize=12)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and render."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--start", type=float, help="Unix seconds (default: an hour before --end)")
    parser.add_argument("--end", type=float, help="Unix seconds (default: now)")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD, help="dashboard JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - 3600
    if start >= end:
        parser.error("--start must be before --end")
    print(render(args.prometheus, args.out, start=start, end=end, dashboard=args.dashboard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
