"""HTTP handlers: thin glue between aiohttp requests and the Ingest service.

There is no middleware: aiohttp runs every request of an app that has one through two more coroutines (measured
~1.4 µs a request, with the route's path parameter ~2.3 µs). The refusals a middleware would turn into JSON are
routes instead (see `ingest.app.add_routes`): each path answers the methods it does not serve with `refuse_method`
(405), any other path is answered by `refuse_path` (404), and `post_callback` answers its own 408 and 413.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.keys import DRAINING, INGEST, OPENAPI, PUBLISHER, REGISTRY, SETTINGS
from ingest.service import Ingest, Outcome, Provider, Result
from ingest.settings import IngestSettings

#: NCS only counts a 200 with a JSON body as delivered; its content is ignored.
OK_BODY = b"{}"
#: The `provider` label of a refusal on a path that names none (405 on /metrics, say).
NO_PROVIDER = "unknown"

_OUTCOME_OF_STATUS = {405: Outcome.METHOD_NOT_ALLOWED, 408: Outcome.BODY_TIMEOUT, 413: Outcome.TOO_LARGE}


def _ok() -> web.Response:
    return web.Response(body=OK_BODY, content_type="application/json")


async def post_callback(request: web.Request, *, provider: Provider) -> web.Response:
    """Verify, validate and durably publish one callback; 200 only after the broker's acknowledgement."""
    app = request.app
    ingest, settings = app[INGEST], app[SETTINGS]
    received_ms = ingest.clock_ms()
    ingest.in_flight += 1
    try:
        try:
            raw = await read_body(request, settings)
        except web.HTTPException as exc:  # 408 or 413: the body was not read whole
            response = _refusal(ingest, provider.name, exc)
            response.force_close()  # the rest of the body would be taken for the next request
            return response
        result = await ingest.receive(provider, raw, request.headers, received_ms=received_ms)
    finally:
        ingest.in_flight -= 1
    if result.status == 200:
        return _ok()
    headers = {"Retry-After": str(settings.retry_after_s)} if result.status == 503 else None
    return web.json_response({"error": result.reason}, status=result.status, headers=headers)


async def read_body(request: web.Request, settings: IngestSettings) -> bytes:
    """Read the whole body, at most `max_body_bytes` of it (413) and within `body_timeout_s` (408)."""
    declared = request.content_length
    limit = settings.max_body_bytes
    if declared is not None and declared > limit:
        # Refused on its Content-Length, before a byte of it is read.
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
    content = request.content
    if content.is_eof():
        # Received whole already (the usual case: a small body comes with its head): taken from the buffer as it
        # is, no timer to start and cancel, nor aiohttp's reading loop. A chunked one has no length to refuse first.
        raw = content.read_nowait()
        if len(raw) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
        return raw
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            return await request.read()  # a chunked body: 413 once past the app's client_max_size
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None


async def probe_callback(request: web.Request, *, provider: Provider) -> web.Response:
    """Answer GET/HEAD on a callback address with 200, so an address check by NCS succeeds."""
    request.app[INGEST].count(provider.name, Result(Outcome.PROBE, 200))
    return _ok()


async def refuse_method(request: web.Request, *, provider: str = NO_PROVIDER) -> web.Response:
    """Answer a method the path does not serve: a JSON 405 listing those it does, counted."""
    allowed = sorted({route.method for route in request.match_info.route.resource or ()} - {hdrs.METH_ANY})
    return _refusal(request.app[INGEST], provider, web.HTTPMethodNotAllowed(request.method, allowed))


async def refuse_path(request: web.Request) -> web.Response:
    """Answer a path the ingest does not serve: a JSON 404."""
    return _refusal(request.app[INGEST], NO_PROVIDER, web.HTTPNotFound())


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


def _refusal(ingest: Ingest, provider: str, exc: web.HTTPException) -> web.Response:
    """Return the JSON answer of a refusal aiohttp raised or we made, counting those with an outcome."""
    outcome = _OUTCOME_OF_STATUS.get(exc.status)
    if outcome is not None:
        ingest.count(provider, Result(outcome, exc.status))
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
