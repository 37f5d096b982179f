"""wrk against the ingest on a real embedded broker vs a bare aiohttp 200 server (same machine, same run).

Run: `.venv/bin/python -m bench.ingest_wrk [--duration 10] [--connections 64] [--sids 64] [--env INGEST_X=v]`
(needs `wrk` and `make kafka-jars`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from devenv.kafka import EmbeddedKafka, free_port
from devenv.topics import TopicSpec, ensure_topics
from ingest.signature import sign

SECRET = "bench-secret"  # noqa: S105  # a throwaway HMAC key for the benchmark
BODY = (
    b'{"noticeId":"4eb720f0-8da7-11e9-a43e-53f411c2761f","productId":3,"eventType":43,"notifyMs":1611566412672,'
    b'"sid":"d5aeb39e1d0ee0f3e6c2b7ea5f5c7d3a","payload":{"cname":"bench-room","details":{"msgName":'
    b'"recorder_audio_stream_state_changed","streamUid":"1234567","state":0,"UtcMs":1611566412000},'
    b'"sendts":1611566412672,"sequence":7,"serviceType":1,"sid":"d5aeb39e1d0ee0f3e6c2b7ea5f5c7d3a",'
    b'"uid":"527841"},"serviceScene":"mix_record","padding":"' + b"x" * 260 + b'"}'
)
BARE_SERVER = """
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")
app = web.Application()
app.router.add_post("/v1/callbacks/agora", ok)
web.run_app(app, host="127.0.0.1", port=PORT, access_log=None, print=None)
"""
#: Signed bodies of different sids, sent in turn: real traffic spreads over many keys (and partitions).
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
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def bodies(count: int) -> list[bytes]:
    """Return `count` bodies like BODY, each with its own sid."""
    return [BODY.replace(b"d5aeb39e1d0ee0f3e6c2b7ea5f5c7d3a", b"%032x" % n) for n in range(count)]


def lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in data) + '"'


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  # a fixed loopback URL
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def wrk(url: str, script: Path, *, duration: int, connections: int) -> str:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", str(script), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603
    return next(line for line in output.splitlines() if line.startswith("RESULT"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sids", type=int, default=64, help="distinct sids (keys) among the bodies")
    parser.add_argument("--env", nargs="*", default=[], help="extra INGEST_*=value settings for the ingest")
    args = parser.parse_args()
    with EmbeddedKafka(log_level="WARN") as kafka, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(ensure_topics(kafka.bootstrap_servers, [TopicSpec("bench.raw", partitions=4)]))
        script = Path(tmp) / "post.lua"
        sample = bodies(args.sids)
        script.write_text(
            LUA.format(
                bodies=",".join(lua_string(body) for body in sample),
                signatures=",".join(f'"{sign(body, SECRET.encode())}"' for body in sample),
            )
        )
        bare_port, ingest_port = free_port(), free_port()
        env = {
            **os.environ,
            "INGEST_PORT": str(ingest_port),
            "INGEST_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "INGEST_RAW_TOPIC": "bench.raw",
            "INGEST_AGORA_SECRETS": SECRET,
            "INGEST_LOG_LEVEL": "WARNING",
            **dict(arg.split("=", 1) for arg in args.env),
        }
        servers = [
            subprocess.Popen([sys.executable, "-c", BARE_SERVER.replace("PORT", str(bare_port))]),  # noqa: S603
            subprocess.Popen([sys.executable, "-m", "ingest"], env=env),
        ]
        try:
            wait_http(f"http://127.0.0.1:{ingest_port}/readyz")
            for name, port in (("bare aiohttp 200", bare_port), ("ingest + kafka", ingest_port)):
                url = f"http://127.0.0.1:{port}/v1/callbacks/agora"
                wrk(url, script, duration=2, connections=args.connections)  # warm-up
                result = wrk(url, script, duration=args.duration, connections=args.connections)
                print(f"{name:18} body={len(BODY)}B sids={args.sids} {result}", flush=True)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=15)


if __name__ == "__main__":
    main()
