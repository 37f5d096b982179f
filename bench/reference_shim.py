"""A straightforward ingest shim, the ingest benchmark's reference: verify, parse, `send_and_wait`, answer 200.

What anyone would write first with aiohttp and aiokafka (as in ../shared/notes/performance.md): HMAC-SHA256 of the
body, `orjson.loads` for the sid, an idempotent acks=all producer lingering 1 ms, one awaited send per request. No
metrics, limits, headers or deadlines. It shows what the ingest's guarantees cost beyond that, and what any shim
on these two libraries costs beyond a bare 200.

    python -m bench.reference_shim PORT BOOTSTRAP_SERVERS TOPIC SECRET
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

PRODUCER = web.AppKey("producer", AIOKafkaProducer)


def app(bootstrap_servers: str, topic: str, secret: bytes) -> web.Application:
    """Return the shim's application, publishing to `topic`."""

    async def post(request: web.Request) -> web.Response:
        raw = await request.read()
        expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("Agora-Signature-V2", "")):
            return web.Response(status=401)
        sid = orjson.loads(raw)["payload"]["sid"]
        await request.app[PRODUCER].send_and_wait(topic, raw, key=sid.encode())
        return web.Response(body=b"{}", content_type="application/json")

    async def producer(application: web.Application) -> AsyncIterator[None]:
        kafka = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=1)
        await kafka.start()
        application[PRODUCER] = kafka
        yield
        await kafka.stop()

    application = web.Application()
    application.cleanup_ctx.append(producer)
    application.router.add_post("/v1/callbacks/agora", post)
    application.router.add_get("/readyz", _ready)
    return application


async def _ready(_: web.Request) -> web.Response:
    return web.Response(text="ready")


def main() -> None:
    """Serve on loopback until SIGTERM."""
    port, bootstrap_servers, topic, secret = sys.argv[1:5]
    web.run_app(
        app(bootstrap_servers, topic, secret.encode()), host="127.0.0.1", port=int(port), access_log=None, print=None
    )


if __name__ == "__main__":
    main()
