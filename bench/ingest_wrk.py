"""Ingest benchmark: wrk against the ingest publishing to the run's broker vs a bare aiohttp 200 server, same wrk."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench import brokerio, workload
from bench.context import Context
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import answers, python, wait_for
from devenv.kafka import free_port
from devenv.processes import ingest_env as loopback_ingest_env
from devenv.processes import service
from devenv.topics import TopicSpec
from ingest.signature import sign

SECRET = b"bench-secret"  # a throwaway HMAC key for the benchmark
CONNECTIONS = 64
#: Distinct simulated deliveries (so sids and partitions) wrk sends in turn.
BODIES = 256
BARE_SERVER = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")
app = web.Application()
app.router.add_post("/v1/callbacks/agora", ok)
web.run_app(app, host="127.0.0.1", port=PORT, access_log=None, print=None)
"""
#: Signed bodies sent in turn; `done` prints one line the benchmark parses.
LUA = """
local bodies = {{{bodies}}}
local signatures = {{{signatures}}}
local n = 0
request = function()
  n = n % #bodies + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json",
    ["Agora-Signature-V2"] = signatures[n]}}, bodies[n])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""
WRK_TOOL = Path(__file__).resolve().parents[1] / "deploy" / "tools" / "wrk.sh"


def ensure_wrk() -> str:
    """Return wrk's path, installing Debian's package first (deploy/tools/wrk.sh) if it is missing."""
    if shutil.which("wrk") is None:
        log("wrk is missing: installing it with deploy/tools/wrk.sh")
        subprocess.run(["bash", str(WRK_TOOL), ".cache/tools"], check=True)  # noqa: S603, S607  # our script
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and deploy/tools/wrk.sh could not install it")
    return found


def lua_script(path: Path, bodies: list[bytes], *, secret: bytes = SECRET, template: str = LUA) -> None:
    """Write the wrk script (`template`) that posts these bodies, each signed with `secret`."""
    path.write_text(
        template.format(
            bodies=",".join(_lua_string(body) for body in bodies),
            signatures=",".join(f'"{sign(body, secret)}"' for body in bodies),
        )
    )


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in data) + '"'


def wrk(url: str, script: Path, *, seconds: int) -> dict[str, float]:
    """Run wrk (1 thread, CONNECTIONS connections) and return its RESULT line's numbers."""
    argv = [ensure_wrk(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout  # noqa: S603
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    return {key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", line)}


def run(ctx: Context) -> BenchResult:
    """Drive the three servers with the same wrk script in alternating rounds; keep each server's best round."""
    ensure_wrk()
    topic = brokerio.unique("ingest-raw")
    asyncio.run(brokerio.create(ctx.broker, TopicSpec(topic, brokerio.PARTITIONS)))
    bodies = workload.noisy(BODIES, seed=ctx.seed).lines[:BODIES]
    script = ctx.workdir / "post.lua"
    lua_script(script, bodies)
    # Short rounds, and more of them: the machine's speed drifts over tens of seconds (2 cores shared with the
    # broker and wrk), and each server's best round is kept.
    seconds, rounds = ctx.size(full=8, quick=3), ctx.size(full=5, quick=1)
    ports = {name: free_port() for name in ("bare", "shim", "ingest")}
    servers = {
        "bare": ([sys.executable, "-c", BARE_SERVER.replace("PORT", str(ports["bare"]))], dict(os.environ)),
        "shim": (
            python("bench.reference_shim", str(ports["shim"]), ctx.broker, topic, SECRET.decode()),
            dict(os.environ),
        ),
        "ingest": (python("ingest"), ingest_env(ctx.broker, topic, ports["ingest"])),
    }
    urls = {name: f"http://127.0.0.1:{port}/v1/callbacks/agora" for name, port in ports.items()}
    # The bare server only knows POST (a GET is 405); the others are ready once Kafka answers.
    ready = {
        "bare": (urls["bare"], 405),
        "shim": (f"http://127.0.0.1:{ports['shim']}/readyz", 200),
        "ingest": (f"http://127.0.0.1:{ports['ingest']}/readyz", 200),
    }
    best: dict[str, dict[str, float]] = {}
    paired: list[float] = []  # the ingest's requests/s ÷ the shim's, of the same round (back to back)
    with contextlib.ExitStack() as running:
        for name, (argv, env) in servers.items():
            started = running.enter_context(service(name, argv, env, ctx.workdir / f"{name}.log"))
            url, status = ready[name]
            asyncio.run(wait_for(functools.partial(answers, url, status), what=name, timeout_s=30, services=[started]))
        for url in urls.values():
            wrk(url, script, seconds=2)  # warm-up
        for _ in range(rounds):
            this_round = {}
            for name, url in urls.items():
                result = this_round[name] = wrk(url, script, seconds=seconds)
                log(f"ingest: {name} {result}")
                if result["non2xx"] or result["errors"]:
                    raise RuntimeError(f"{name}: wrk saw failed requests: {result}")
                if result["rps"] > best.get(name, {}).get("rps", 0):
                    best[name] = result
            paired.append(this_round["ingest"]["rps"] / this_round["shim"]["rps"])
    return _result(best, bodies, seconds=seconds, rounds=rounds, paired=paired)


def ingest_env(bootstrap_servers: str, topic: str, port: int) -> dict[str, str]:
    """Return the ingest's environment: the run's broker, a fresh raw topic, our secret, defaults otherwise."""
    return loopback_ingest_env(
        port=str(port),
        bootstrap_servers=bootstrap_servers,
        raw_topic=topic,
        agora_secrets=SECRET.decode(),
        instance_id="bench",
        log_level="WARNING",
    )


def _result(
    best: dict[str, dict[str, float]], bodies: list[bytes], *, seconds: int, rounds: int, paired: list[float]
) -> BenchResult:
    ingest, bare, shim = best["ingest"], best["bare"], best["shim"]
    size = sum(map(len, bodies)) // len(bodies)
    paired_median = statistics.median(paired)

    def figure(of: dict[str, float], key: str, label: str, unit: str) -> Figure:
        return Figure(label, of[key], unit)

    return BenchResult(
        name="ingest",
        title="HTTP ingest (verify, publish with acks=all, answer 200 after the ack) vs a bare aiohttp 200 server",
        method=(
            f"`wrk -t1 -c{CONNECTIONS} -d{seconds}s` posting {len(bodies)} signed simulated deliveries (~{size} B) "
            f"in turn; after a 2 s warm-up of each, {rounds} alternating round(s) per server, each server's best "
            "round kept. The ingest runs with its default settings (linger 1 ms) against the run's broker. A "
            "third server, `bench/reference_shim.py`, is the straightforward shim (HMAC, `orjson.loads`, "
            "`send_and_wait` with acks=all, idempotent, linger 1 ms; no metrics, limits or deadlines) on the same "
            "broker: what any aiohttp + aiokafka shim costs here. The ingest's requests/s ÷ the shim's of the same "
            f"round (run back to back), median over the rounds: {paired_median:.2f} "
            f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in paired)})."
        ),
        comparisons=[
            Comparison(
                "requests_per_second_vs_bare",
                figure(ingest, "rps", "ingest", "req/s"),
                figure(bare, "rps", "bare aiohttp", "req/s"),
            ),
            Comparison(
                "shim_requests_per_second_vs_bare",
                figure(shim, "rps", "straightforward shim", "req/s"),
                figure(bare, "rps", "bare aiohttp", "req/s"),
            ),
            Comparison(
                "requests_per_second_vs_shim",
                figure(ingest, "rps", "ingest", "req/s"),
                figure(shim, "rps", "straightforward shim", "req/s"),
                target=0.9,
            ),
            Comparison(
                "p99_vs_shim",
                figure(ingest, "p99_ms", "ingest p99", "ms"),
                figure(shim, "p99_ms", "shim p99", "ms"),
                higher_is_better=False,
                target=1.5,
            ),
            Comparison(
                "p50_vs_bare",
                figure(ingest, "p50_ms", "ingest p50", "ms"),
                figure(bare, "p50_ms", "bare p50", "ms"),
                higher_is_better=False,
            ),
            Comparison(
                "p99_vs_bare",
                figure(ingest, "p99_ms", "ingest p99", "ms"),
                figure(bare, "p99_ms", "bare p99", "ms"),
                higher_is_better=False,
            ),
        ],
        details={
            "ingest": ingest,
            "bare": bare,
            "shim": shim,
            "connections": CONNECTIONS,
            "body_bytes_mean": size,
            "ingest_vs_shim_per_round": paired,
            "ingest_vs_shim_paired_median": paired_median,
        },
    )
