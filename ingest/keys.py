"""Typed keys of the ingest's aiohttp application state."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from ingest.publisher import Publisher
from ingest.service import Ingest
from ingest.settings import IngestSettings

SETTINGS = web.AppKey("settings", IngestSettings)
PUBLISHER = web.AppKey("publisher", Publisher)
INGEST = web.AppKey("ingest", Ingest)
REGISTRY = web.AppKey("registry", CollectorRegistry)
#: The OpenAPI document, serialised once.
OPENAPI = web.AppKey("openapi", bytes)
#: Set once SIGTERM's shutdown begins: /readyz then answers 503 so load balancers stop sending.
DRAINING = web.AppKey("draining", dict[str, bool])
