"""The ingest's aiohttp application: `init_app(settings)` wires routes, state and the producer's lifecycle."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from ingest import handlers, openapi
from ingest.keys import DRAINING, INGEST, OPENAPI, PUBLISHER, REGISTRY, SETTINGS
from ingest.metrics import IngestMetrics
from ingest.publisher import KafkaPublisher, Publisher
from ingest.service import Ingest, Provider
from ingest.settings import PROVIDERS, IngestSettings
from ingest.signature import SCHEMES

log = logging.getLogger(__name__)

#: After answering before the body was read whole (408, 413), read and drop what the client still sends for at
#: most this long, so that it sees the answer rather than a reset; then close (aiohttp's default is 10 s).
DISCARD_AFTER_REFUSAL_S = 1.0


def kafka_publisher(settings: IngestSettings) -> KafkaPublisher:
    """Return the production publisher described by the settings."""
    return KafkaPublisher(
        bootstrap_servers=settings.bootstrap_servers,
        topic=settings.raw_topic,
        timeout_s=settings.publish_timeout_s,
        linger_ms=settings.linger_ms,
        client_id=f"ingest-{settings.instance_id}",
    )


def providers(settings: IngestSettings) -> dict[str, Provider]:
    """Return each provider with its signature schemes and secrets."""
    return {
        name: Provider(name, SCHEMES[name], settings.secrets_of(name), allow_unsigned=settings.allow_unsigned)
        for name in PROVIDERS
    }


async def publisher_lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Start the publisher with the app; on shutdown, after in-flight requests, flush and stop it."""
    publisher = app[PUBLISHER]
    await publisher.start()
    yield
    await publisher.stop()


async def begin_draining(app: web.Application) -> None:
    """Mark the app as draining: /readyz fails while in-flight requests finish."""
    app[DRAINING]["draining"] = True
    log.info("draining: no new connections, finishing in-flight requests")


def init_app(
    settings: IngestSettings, publisher: Publisher | None = None, registry: CollectorRegistry | None = None
) -> web.Application:
    """Build the ingest application; the publisher defaults to Kafka as configured."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args={
            # Counted from a connection's opening or its previous answer: bounds slow request heads (slowloris).
            "keepalive_timeout": settings.header_timeout_s,
            "lingering_time": DISCARD_AFTER_REFUSAL_S,
            # The signature covers the bytes on the wire, and a compressed body could inflate past the limit.
            "auto_decompress": False,
        },
    )
    registry = registry if registry is not None else CollectorRegistry()
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[PUBLISHER] = publisher if publisher is not None else kafka_publisher(settings)
    app[DRAINING] = {"draining": False}
    app[OPENAPI] = orjson.dumps(openapi.document(settings))
    app[INGEST] = Ingest(
        providers=providers(settings),
        publisher=app[PUBLISHER],
        metrics=IngestMetrics.create(registry),
        instance_id=settings.instance_id,
    )
    _warn_about_unsigned(app[INGEST])
    app.cleanup_ctx.append(publisher_lifecycle)
    app.on_shutdown.append(begin_draining)
    add_routes(app.router, app[INGEST])
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(router: web.UrlDispatcher, ingest: Ingest) -> None:
    """Route every path the ingest serves, each with a JSON 405 for the other methods; any other path is a 404.

    A route for any method (`*`) must come after the path's other routes: aiohttp takes the first that matches.
    """
    for provider in ingest.providers.values():
        # One plain route per provider, looked up in a dict: a path parameter costs a regular expression a request.
        path = openapi.CALLBACK_PATH_TEMPLATE.format(provider=provider.name)
        router.add_post(path, functools.partial(handlers.post_callback, provider=provider))
        router.add_get(path, functools.partial(handlers.probe_callback, provider=provider))  # HEAD too
        router.add_route("*", path, functools.partial(handlers.refuse_method, provider=provider.name))
    served: dict[str, Handler] = {
        "/healthz": handlers.healthz,
        "/readyz": handlers.readyz,
        "/metrics": handlers.metrics,
        openapi.PATH: handlers.openapi,
    }
    for path, handler in served.items():
        router.add_get(path, handler)  # HEAD too
        router.add_route("*", path, handlers.refuse_method)
    # Any path, a newline in it too (`.` would not match one): tried last, aiohttp looks plain paths up first.
    router.add_route("*", r"/{path:[\s\S]*}", handlers.refuse_path)


def _warn_about_unsigned(ingest: Ingest) -> None:
    for provider in ingest.providers.values():
        if provider.secrets:
            continue
        if provider.allow_unsigned:
            log.warning(
                "UNSIGNED CALLBACKS ACCEPTED: %s has no secret and INGEST_ALLOW_UNSIGNED is set (local only)",
                provider.name,
            )
        else:
            log.warning("%s has no secret configured: all of its callbacks will be refused (401)", provider.name)
