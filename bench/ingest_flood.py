"""Ingest under a signature flood: valid req/s alone vs while a second wrk floods forged signatures, same run."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import orjson

from bench import brokerio, workload
from bench.context import Context
from bench.ingest_wrk import BODIES, CONNECTIONS, ensure_wrk, ingest_env, lua_script, wrk
from bench.report import BenchResult, Comparison, Figure, log
from bench.services import answers, python, wait_for
from devenv.kafka import free_port
from devenv.processes import service
from devenv.topics import TopicSpec

#: Signed, but not with the ingest's secret: the ingest pays the whole verification (an HMAC per secret) for each.
FORGED_WITH = b"not-the-ingest-secret"
#: Forged bodies carry sids with this prefix, so that the raw topic shows whether any of them got through.
FLOOD_SID_PREFIX = "flood-"
#: The flood counts answers by status; `done` prints one line the benchmark parses.
FLOOD_LUA = """
local bodies = {{{bodies}}}
local signatures = {{{signatures}}}
local n = 0
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) unauthorized = 0; other = 0 end
request = function()
  n = n % #bodies + 1
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json",
    ["Agora-Signature-V2"] = signatures[n]}}, bodies[n])
end
function response(status, headers, body)
  if status == 401 then unauthorized = unauthorized + 1 else other = other + 1 end
end
done = function(summary, latency, requests)
  local unauthorized, other = 0, 0
  for _, thread in ipairs(threads) do
    unauthorized = unauthorized + thread:get("unauthorized")
    other = other + thread:get("other")
  end
  io.write(string.format("RESULT rps=%.1f unauthorized=%d other=%d errors=%d\\n",
    summary.requests / (summary.duration / 1e6), unauthorized, other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
#: The flood starts this long before the measured valid run and lasts this long after it.
FLOOD_MARGIN_S = 1


def forged(bodies: list[bytes]) -> list[bytes]:
    """Return the bodies with their sids renamed into the flood's namespace."""
    out = []
    for n, line in enumerate(bodies):
        body = orjson.loads(line)
        body["payload"]["sid"] = f"{FLOOD_SID_PREFIX}{n}"
        out.append(orjson.dumps(body))
    return out


def flooded(url: str, valid: Path, flood: Path, *, seconds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Run the valid wrk while a second wrk floods the same URL; return (valid, flood) RESULT numbers."""
    argv = [ensure_wrk(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds + 2 * FLOOD_MARGIN_S}s", "-s", str(flood), url]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as flooder:  # noqa: S603  # fixed argv
        try:
            time.sleep(FLOOD_MARGIN_S)  # the flood is on before the measured run starts
            during = wrk(url, valid, seconds=seconds)
            output, _ = flooder.communicate(timeout=seconds + 30)
        finally:
            if flooder.poll() is None:
                flooder.kill()
                flooder.wait(timeout=10)
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    return during, {key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", line)}


def run(ctx: Context) -> BenchResult:
    """Alternate rounds of valid traffic alone and valid traffic under the flood; keep each side's best round."""
    ensure_wrk()
    topic = brokerio.unique("ingest-flood")
    asyncio.run(brokerio.create(ctx.broker, TopicSpec(topic, brokerio.PARTITIONS)))
    bodies = workload.noisy(BODIES, seed=ctx.seed).lines[:BODIES]
    valid, flood = ctx.workdir / "valid.lua", ctx.workdir / "flood.lua"
    lua_script(valid, bodies)
    lua_script(flood, forged(bodies), secret=FORGED_WITH, template=FLOOD_LUA)
    seconds, rounds = ctx.size(full=10, quick=3), ctx.size(full=2, quick=1)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/callbacks/agora"
    best: dict[str, dict[str, float]] = {}
    floods: list[dict[str, float]] = []
    env = ingest_env(ctx.broker, topic, port)
    with service("ingest", python("ingest"), env, ctx.workdir / "flood-ingest.log") as i:
        ready = f"http://127.0.0.1:{port}/readyz"
        asyncio.run(wait_for(lambda: answers(ready, 200), what="ingest", timeout_s=30, services=[i]))
        wrk(url, valid, seconds=2)  # warm-up
        for _ in range(rounds):
            alone = wrk(url, valid, seconds=seconds)
            during, flood_result = flooded(url, valid, flood, seconds=seconds)
            log(f"ingest_flood: alone {alone} during {during} flood {flood_result}")
            _check(alone, during, flood_result)
            floods.append(flood_result)
            for name, result in (("alone", alone), ("during", during)):
                if result["rps"] > best.get(name, {}).get("rps", 0):
                    best[name] = result
            i.check_alive()
    leaked = asyncio.run(_flood_records(ctx.broker, topic))
    if leaked:
        raise RuntimeError(f"{leaked} forged callbacks reached the raw topic")
    return _result(best, max(floods, key=lambda f: f["rps"]), seconds=seconds, rounds=rounds)


def _check(alone: dict[str, float], during: dict[str, float], flood: dict[str, float]) -> None:
    for name, result in (("alone", alone), ("during the flood", during)):
        if result["non2xx"] or result["errors"]:
            raise RuntimeError(f"valid traffic {name}: wrk saw failed requests: {result}")
    if flood["other"] or not flood["unauthorized"]:
        raise RuntimeError(f"the flood was not refused with 401 every time: {flood}")


async def _flood_records(bootstrap_servers: str, topic: str) -> int:
    records = await brokerio.read_to_end(bootstrap_servers, topic)
    return sum(1 for record in records if (record.key or b"").startswith(FLOOD_SID_PREFIX.encode()))


def _result(best: dict[str, dict[str, float]], flood: dict[str, float], *, seconds: int, rounds: int) -> BenchResult:
    alone, during = best["alone"], best["during"]
    return BenchResult(
        name="ingest_flood",
        title="HTTP ingest: valid callbacks' throughput while a flood of forged signatures hits the same ingest",
        method=(
            f"One ingest (default settings) on the run's broker. `wrk -t1 -c{CONNECTIONS} -d{seconds}s` posts "
            f"{BODIES} validly signed deliveries in turn, alone, then again while a second `wrk -t1 -c{CONNECTIONS}` "
            "posts the same deliveries (other sids) signed with another secret as fast as it can, from 1 s before to "
            f"1 s after; after a 2 s warm-up, {rounds} round(s) of each, the best of each kept. Every forged request "
            "must get a 401 and none may reach the raw topic; every valid one a 200. Both load generators share the "
            "machine with the ingest and the broker: the ratio includes the second wrk's own CPU."
        ),
        comparisons=[
            Comparison(
                "valid_requests_per_second_flooded_vs_alone",
                Figure("valid during the flood", during["rps"], "req/s"),
                Figure("valid alone", alone["rps"], "req/s"),
            ),
            Comparison(
                "valid_p99_flooded_vs_alone",
                Figure("valid p99 during the flood", during["p99_ms"], "ms"),
                Figure("valid p99 alone", alone["p99_ms"], "ms"),
                higher_is_better=False,
            ),
        ],
        notes=[f"the flood itself: {flood['rps']:,.0f} req/s, all answered 401"],
        details={"alone": alone, "during": during, "flood": flood, "connections_each": CONNECTIONS},
    )
