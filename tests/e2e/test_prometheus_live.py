"""A real Prometheus scrapes a real ingest and worker under noisy load: every rule and dashboard expression has data.

promtool's unit tests prove what the rules decide on made-up series; this proves the series are real: the names and
labels that the rules and the dashboard use are the ones the running processes export. How an alert is checked:
every alert expression is a conjunction of comparisons (the rules file's convention), so it is split at its
top-level `and`/`or`/`unless` and at each top-level comparison operator (`>`, `<`, `>=`, `<=`, `==`, `!=`), and
every side that is not a plain number must return data. Recording rules are checked twice: their expression, and
the series they record (which is what alerts and panels read).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from devenv.kafka import free_port
from devenv.processes import Service
from processor.simulate import Options, simulate
from tests.e2e.support import SECRET, running_system, service, wait_for_status

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "recording.rules.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "recording-callbacks.json"
RENDER = REPO / "deploy" / "grafana" / "render.py"
#: Prometheus makes its first scrape queryable after 5-6 s; rates need a second sample, `deriv` a second evaluation.
FIRST_SCRAPE_S = 20
DATA_S = 40
#: Waves of simulated load: one for the check; more, a few seconds apart, for a livelier picture (DASHBOARD_PNG).
WAVES = 4 if os.environ.get("DASHBOARD_PNG") else 1
WAVE_PAUSE_S = 6
RENDER_S = 60
#: Records the processor cannot use, written straight to the raw topic (the ingest refuses the first two and answers
#: the other product's notice without publishing it).
POISON = (b"not json at all", b"[1, 2, 3]", orjson.dumps({"productId": 5, "eventType": 1, "payload": {"sid": "x"}}))
#: Cumulative counts that the noisy load must have moved, so that the panels show something happening.
HAPPENED = (
    'sum(ingest_requests_total{outcome="bad_signature"})',
    "sum(recording_processor_dead_letters_total)",
    "sum(recording_processor_failovers_total)",
    "sum(recording_processor_discontinuities_total)",
    'sum(recording_processor_sequence_gaps_total{reason="timeout"})',
    "sum(recording_processor_duplicates_dropped_total)",
    "sum(recording_processor_fatal_errors_total)",
    'sum(recording_processor_sessions_ended_total{exit_status!="0"})',
)
#: Where the expression splits: a set operator (with its matching clause) or a comparison, at the top level.
SPLIT = re.compile(r"\b(?:and|or|unless)\b(?:\s+(?:on|ignoring)\s*\([^)]*\))?|==|!=|>=|<=|>|<")


def top_level(expr: str) -> list[bool]:
    """Mark each character that is outside every bracket and string literal."""
    marks, depth, quote = [], 0, ""
    for char in expr:
        if quote:
            marks.append(False)
            quote = "" if char == quote else quote
            continue
        if char in "\"'`":
            quote = char
        depth -= char in ")]}"
        marks.append(depth == 0 and not quote)
        depth += char in "([{"
    return marks


def operands(expr: str) -> list[str]:
    """Return the sides of an alert expression's comparisons and set operators, numbers left out."""
    outside = top_level(expr)
    sides, start = [], 0
    for match in SPLIT.finditer(expr):
        if outside[match.start()]:
            sides.append(expr[start : match.start()])
            start = match.end()
    sides.append(expr[start:])
    return [side.strip() for side in sides if side.strip() and not re.fullmatch(r"[\d.eE+-]+", side.strip())]


def checked_expressions() -> dict[str, str]:
    """Every expression the rules and the dashboard evaluate, by where it comes from."""
    checked: dict[str, str] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                checked[f"record {rule['record']}: its expression"] = rule["expr"]
                checked[f"record {rule['record']}: the recorded series"] = rule["record"]
            else:
                for number, side in enumerate(operands(rule["expr"]), 1):
                    checked[f"alert {rule['alert']}: side {number}"] = side
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            checked[f"panel {panel['id']} ({panel['title']}) target {target['refId']}"] = target["expr"]
    return checked


def prometheus_config(path: Path, *, ingest_port: int, worker_port: int) -> Path:
    """Write a configuration scraping both services every second under the rules' job names."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "recording-ingest", "static_configs": [{"targets": [f"127.0.0.1:{ingest_port}"]}]},
            {"job_name": "recording-processor", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> list[dict[str, Any]]:
    """Evaluate one instant query; its result vector (an error answer fails the test)."""
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def without_data(session: aiohttp.ClientSession, base: str, checked: dict[str, str]) -> dict[str, str]:
    """Return the checked expressions that return nothing yet, and the noise that has not happened yet."""
    empty = {where: expr for where, expr in checked.items() if not await query(session, base, expr)}
    for expr in HAPPENED:
        result = await query(session, base, expr)
        if not result or float(result[0]["value"][1]) <= 0:
            empty[f"noise: {expr} > 0"] = expr
    return empty


async def wait_for_first_scrape(session: aiohttp.ClientSession, base: str, services: list[Service]) -> None:
    """Poll until both targets' first samples are queryable (bounded), so that rates see the load from 0."""
    expr = 'count(up{job=~"recording-ingest|recording-processor"} == 1) == 2 and on () ingest_requests_in_flight'
    async with asyncio.timeout(FIRST_SCRAPE_S):
        while not await query(session, base, f"{expr} and on () count(recording_processor_dead_letters_total)"):
            for running in services:
                running.check_alive()
            await asyncio.sleep(0.5)


async def load(
    session: aiohttp.ClientSession, *, ingest: str, bootstrap_servers: str, topic: str, wave: int, sent: Path
) -> None:
    """One wave of noise: a badly signed request, poison records, noisy simulated recordings, another bad request."""
    assert await post_badly_signed(session, ingest) == 401
    await poison_raw_topic(bootstrap_servers, topic)
    options = Options(
        url=f"{ingest}/v1/callbacks/agora",
        recordings=12,
        sent=sent,
        secret=SECRET,
        seed=wave,
        rate=2_000 / wave,
        jitter_ms=800,
        duplicates=0.2,
        drops=0.05,
        failovers=True,
    )
    tally = await simulate(options)
    assert (tally.failed, tally.acknowledged) == (0, tally.sent)
    assert await post_badly_signed(session, ingest) == 401


async def poison_raw_topic(bootstrap_servers: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in POISON:
            await producer.send_and_wait(topic, value, key=b"poison")
    finally:
        await producer.stop()


async def post_badly_signed(session: aiohttp.ClientSession, ingest: str) -> int:
    body = orjson.dumps({"noticeId": "n", "productId": 3, "eventType": 40, "payload": {"sid": "s", "sequence": 0}})
    headers = {"Agora-Signature-V2": "00" * 32, "Content-Type": "application/json"}
    async with session.post(f"{ingest}/v1/callbacks/agora", data=body, headers=headers) as response:
        return response.status


def render(prometheus: str, out: Path, *, start: float) -> Path:
    """Run deploy/grafana/render.py by path into `out` (bounded)."""
    argv = [sys.executable, str(RENDER), "--prometheus", prometheus, "--out", str(out), "--start", str(start)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RENDER_S, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    return out


def test_alert_expressions_split_into_the_sides_of_their_comparisons():
    expr = 'a{x=~"b|c"} > 0.5\nand on (t)\nrate(d[5m]) >= 3 * e unless on (j, i) f{r="<"} == 0'
    assert operands(expr) == ['a{x=~"b|c"}', "rate(d[5m])", "3 * e", 'f{r="<"}']


@pytest.mark.timeout(180)
async def test_every_rule_and_dashboard_expression_returns_data_from_a_live_ingest_and_worker(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run make tools")
    checked = checked_expressions()
    began = time.time()
    async with running_system(bootstrap_servers, tmp_path) as system:
        settings, ingest, prometheus_port = system.settings, system.ingest, free_port()
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        config = prometheus_config(
            tmp_path / "prometheus.yml", ingest_port=system.ingest_port, worker_port=settings.web_port
        )
        prometheus_argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ]
        with service("prometheus", prometheus_argv, dict(os.environ), tmp_path / "prometheus.log") as p:
            services: list[Service] = [*system.services, p]
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                await wait_for_status(session, f"{prometheus}/-/ready", 200, services)
                await wait_for_first_scrape(session, prometheus, services)
                for wave in range(1, WAVES + 1):
                    if wave > 1:
                        await asyncio.sleep(WAVE_PAUSE_S)
                    sent = tmp_path / f"sent-{wave}.jsonl"
                    await load(
                        session,
                        ingest=ingest,
                        bootstrap_servers=bootstrap_servers,
                        topic=settings.raw_topic,
                        wave=wave,
                        sent=sent,
                    )

                missing = checked
                deadline = time.monotonic() + DATA_S
                while missing and time.monotonic() < deadline:
                    for running in services:
                        running.check_alive()
                    await asyncio.sleep(1)
                    missing = await without_data(session, prometheus, checked)
                assert missing == {}, "no data:\n" + "\n".join(f"  {where}: {expr}" for where, expr in missing.items())

                picture = render(prometheus, tmp_path / "dashboard.png", start=began)
                assert picture.stat().st_size > 30_000
                if os.environ.get("DASHBOARD_PNG"):
                    render(prometheus, REPO / os.environ["DASHBOARD_PNG"], start=began)
