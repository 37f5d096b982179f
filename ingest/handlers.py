"""HTTP handlers: thin glue between aiohttp requests and the Ingest service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.keys import DRAINING, INGEST, OPENAPI, PUBLISHER, REGISTRY, SETTINGS
from ingest.service import Ingest, Outcome, Result
from ingest.settings import IngestSettings

#: NCS only counts a 200 with a JSON body as delivered; its content is ignored.
OK_BODY = b"{}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ok() -> web.Response:
    return web.Response(body=OK_BODY, content_type="application/json")


async def post_callback(request: web.Request) -> web.Response:
    """Verify, validate and durably publish one callback; 200 only after the broker's acknowledgement."""
    ingest = request.app[INGEST]
    received_ms = ingest.clock_ms()
    provider = ingest.providers[request.match_info["provider"]]
    raw = await read_body(request, request.app[SETTINGS])
    result = await ingest.receive(provider, raw, request.headers, received_ms=received_ms)
    if result.status == 200:
        return _ok()
    headers = {"Retry-After": str(request.app[SETTINGS].retry_after_s)} if result.status == 503 else None
    return web.json_response({"error": result.reason}, status=result.status, headers=headers)


async def read_body(request: web.Request, settings: IngestSettings) -> bytes:
    """Read the whole body, at most `max_body_bytes` of it (413) and within `body_timeout_s` (408)."""
    declared = request.content_length
    if declared is not None and declared > settings.max_body_bytes:
        # Refused on its Content-Length, before a byte of it is read.
        raise web.HTTPRequestEntityTooLarge(max_size=settings.max_body_bytes, actual_size=declared)
    if request.content.is_eof():
        # Received whole already (the usual case: a small body comes with its head): reading cannot wait, so
        # no timer to start and cancel. The app's client_max_size still applies (413).
        return await request.read()
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            return await request.read()  # a chunked body: 413 once past the app's client_max_size
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None


async def probe_callback(request: web.Request) -> web.Response:
    """Answer GET/HEAD on a callback address with 200, so an address check by NCS succeeds."""
    ingest = request.app[INGEST]
    ingest.count(request.match_info["provider"], Result(Outcome.PROBE, 200))
    return _ok()


async def healthz(request: web.Request) -> web.Response:
    """Answer 200 while the process serves requests (liveness)."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Answer 200 only while the broker answers and the process is not draining (readiness)."""
    if request.app[DRAINING]["draining"]:
        return web.json_response({"status": "draining"}, status=503)
    if not await request.app[PUBLISHER].ready():
        return web.json_response({"status": "broker unreachable"}, status=503)
    return web.json_response({"status": "ready"})


async def openapi(request: web.Request) -> web.Response:
    """Serve the OpenAPI document of this ingest."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    """Expose the Prometheus metrics of this process."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


_OUTCOME_OF_STATUS = {405: Outcome.METHOD_NOT_ALLOWED, 408: Outcome.BODY_TIMEOUT, 413: Outcome.TOO_LARGE}
#: Answered before the body was read whole: the connection cannot carry another request.
_BODY_LEFT_UNREAD = frozenset({408, 413})


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Track requests in flight; JSON-encode the errors raised (404, 405, 408, 413) and count the refusals."""
    ingest = request.app[INGEST]
    ingest.in_flight += 1
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _refusal(request, ingest, exc)
    finally:
        ingest.in_flight -= 1


def _refusal(request: web.Request, ingest: Ingest, exc: web.HTTPException) -> web.Response:
    outcome = _OUTCOME_OF_STATUS.get(exc.status)
    if outcome is not None:
        provider = request.match_info.get("provider") or request.path.rsplit("/", 1)[-1]
        ingest.count(provider if provider in ingest.providers else "unknown", Result(outcome, exc.status))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    response = web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
    if exc.status in _BODY_LEFT_UNREAD:
        response.force_close()
    return response
