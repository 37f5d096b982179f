"""The ingest's OpenAPI document: valid OpenAPI 3.1, exactly the app's routes, and what the handlers answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ingest.app import init_app
from ingest.callback import InvalidCallback, OtherProduct, inspect
from ingest.openapi import CALLBACK_PATH_TEMPLATE, document
from ingest.settings import PROVIDERS, IngestSettings
from tests.ingest_support import AGORA_SECRET, MemoryPublisher, agora_headers, callback_body, rtc_channel_body

Client = TestClient[web.Request, web.Application]
SETTINGS = IngestSettings(agora_secrets=[AGORA_SECRET.decode()], max_body_bytes=2048, publish_timeout_s=0.2)
DOC = document(SETTINGS)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def schemas_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON Schema the document embeds: under `schema` keys and in components.schemas."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "schema" and isinstance(child, dict):
                yield child
            yield from schemas_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from schemas_in(child)


def refs_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "$ref":
                yield child
            yield from refs_in(child)
    elif isinstance(value, list):
        for child in value:
            yield from refs_in(child)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    target: Any = doc
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def test_the_document_is_valid_openapi_3_1() -> None:
    schemathesis.openapi.from_dict(orjson.loads(orjson.dumps(DOC))).validate()  # raises on any violation
    for schema in [*DOC["components"]["schemas"].values(), *schemas_in(DOC)]:
        Draft202012Validator.check_schema(schema)
    for ref in set(refs_in(DOC)):
        assert resolve(DOC, ref) is not None


def routes() -> set[tuple[str, str]]:
    """Return the (method, path) of every route of the app; `*` are the refusals (405, and 404 elsewhere)."""
    app = init_app(SETTINGS, publisher=MemoryPublisher())
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}


def test_the_documented_routes_are_exactly_the_routes_the_app_registers() -> None:
    served = {(method, path) for method, path in routes() if method != "*"}
    documented = {
        (method, path.format(provider=provider))
        for method, path, _ in operations(DOC)
        for provider in (PROVIDERS if "{provider}" in path else [""])
    }
    assert documented == served


def test_every_documented_path_refuses_the_other_methods_and_every_other_path_is_refused() -> None:
    routed = routes()
    refused = {path for method, path in routed if method == "*"}
    assert refused == {path for _, path in routed} | {"/{path}"}  # the catch-all among them


def test_the_provider_parameter_lists_exactly_the_providers_the_app_routes() -> None:
    (parameter,) = DOC["paths"][CALLBACK_PATH_TEMPLATE]["parameters"]
    assert parameter["schema"]["enum"] == list(PROVIDERS)
    routed = {path for _, path in routes() if path.startswith("/v1/callbacks/")}
    assert routed == {CALLBACK_PATH_TEMPLATE.format(provider=provider) for provider in PROVIDERS}


def test_every_signature_header_the_ingest_verifies_is_a_security_scheme() -> None:
    documented = {scheme["name"] for scheme in DOC["components"]["securitySchemes"].values()}
    assert documented == {"Agora-Signature-V2", "Agora-Signature", "Ar-Signature"}


# --- what the handlers answer conforms to the document (the 4xx/5xx the live fuzzing cannot provoke) ------------


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher(timeout_s=0.2)


@pytest.fixture
async def client(publisher: MemoryPublisher) -> AsyncIterator[Client]:
    test_client = TestClient(TestServer(init_app(SETTINGS, publisher=publisher), host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def assert_documented(method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """The status is documented for the operation, with its required headers, and the body fits its schema."""
    where = f"paths/{escape(path)}/{method.lower()}/responses/{status}"
    if method.lower() not in DOC["paths"][path]:
        assert status == 405
        where = "components/responses/MethodNotAllowed"
    documented = resolve(DOC, f"#/{where}")
    for ref in documented.get("headers", {}).values():
        assert resolve(DOC, ref["$ref"])["required"]
        assert ref["$ref"].rsplit("/", 1)[-1] in headers
    if "content" not in documented:
        assert body == b""
        return
    (media_type,) = documented["content"]
    assert headers["Content-Type"].split(";")[0] == media_type
    if media_type == "application/json":
        schema = {"$ref": f"urn:ingest#/{where}/content/{escape(media_type)}/schema"}
        Draft202012Validator(schema, registry=REGISTRY).validate(orjson.loads(body))


def escape(part: str) -> str:
    """Escape one JSON pointer segment (RFC 6901)."""
    return part.replace("~", "~0").replace("/", "~1")


#: The document as a JSON Schema resource, so that response schemas resolve their `#/components/...` references.
REGISTRY: Registry[Any] = Registry().with_resource("urn:ingest", DRAFT202012.create_resource(DOC))


CALLBACK = "/v1/callbacks/{provider}"


@pytest.mark.parametrize(
    ("method", "url", "body", "signed", "status"),
    [
        ("POST", "/v1/callbacks/agora", callback_body(), True, 200),
        ("POST", "/v1/callbacks/agora", b"[1]", True, 400),
        ("POST", "/v1/callbacks/agora", rtc_channel_body(event_type=101), True, 200),
        ("POST", "/v1/callbacks/agora", rtc_channel_body(product_id=True), True, 400),
        ("POST", "/v1/callbacks/agora", rtc_channel_body(), False, 401),
        ("POST", "/v1/callbacks/agora", callback_body(), False, 401),
        ("POST", "/v1/callbacks/anyrtc", callback_body(), True, 401),  # no anyRTC secret configured
        ("POST", "/v1/callbacks/zoom", callback_body(), True, 404),
        ("POST", "/v1/callbacks/agora", callback_body(padding="x" * 4096), True, 413),
        ("GET", "/v1/callbacks/agora", b"", False, 200),
        ("HEAD", "/v1/callbacks/agora", b"", False, 200),
        *((method, "/v1/callbacks/agora", b"{}", False, 405) for method in ("PUT", "PATCH", "DELETE", "OPTIONS")),
    ],
)
async def test_callback_answers_are_documented_with_their_headers_and_bodies(
    client: Client, method: str, url: str, body: bytes, signed: bool, status: int
) -> None:
    headers = agora_headers(body) if signed else {}
    response = await client.request(method, url, data=body, headers=headers)
    assert response.status == status
    assert_documented(method, CALLBACK, status, dict(response.headers), await response.read())


async def test_a_broker_outage_answer_is_documented_with_retry_after(
    client: Client, publisher: MemoryPublisher
) -> None:
    publisher.available = False
    body = callback_body()
    response = await client.post("/v1/callbacks/agora", data=body, headers=agora_headers(body))
    assert response.status == 503
    assert_documented("POST", CALLBACK, 503, dict(response.headers), await response.read())


@pytest.mark.parametrize(("path", "available", "status"), [("/healthz", True, 200), ("/readyz", True, 200),
                                                           ("/readyz", False, 503), ("/metrics", True, 200),
                                                           ("/openapi.json", True, 200)])  # fmt: skip
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_service_endpoint_answers_are_documented(
    client: Client, publisher: MemoryPublisher, method: str, path: str, available: bool, status: int
) -> None:
    publisher.available = available
    response = await client.request(method, path)
    assert response.status == status
    assert_documented(method, path, status, dict(response.headers), await response.read())


async def test_the_ingest_serves_its_own_document(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert orjson.loads(await response.read()) == orjson.loads(orjson.dumps(DOC))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_an_undocumented_method_is_refused_naming_exactly_the_documented_ones(
    client: Client, method: str
) -> None:
    response = await client.request(method, "/v1/callbacks/agora")
    assert response.status == 405
    documented = {m.upper() for m in DOC["paths"][CALLBACK] if m in HTTP_METHODS}
    assert set(response.headers["Allow"].split(",")) == documented


# --- the Callback schema draws the line where the ingest does (schemathesis generates bodies from it) -----------

ABSENT = object()
PRODUCT_IDS = [ABSENT, None, 3, 3.0, "3", " 003\n", "0000000000000003", "00000000000000003", 1, 1.0, "1", " 17 ",
               0, -1, 20, 9007199254740991, 9007199254740992, "9999999999999999", "99999999999999999", True, False,
               {}, [], "", "one", "-1", "+1", "1.0", "\u0661", 1.5, "3 3"]  # fmt: skip


@pytest.mark.parametrize("product_id", PRODUCT_IDS)
@pytest.mark.parametrize(
    "body",
    [
        {"eventType": 40, "payload": {"sid": "s"}},
        {"eventType": 102, "sid": "top-level-only", "payload": {"channelName": "room", "uid": 12121212}},
        {"eventType": "40", "payload": {"sid": "s"}},
        {},
    ],
)
def test_a_body_fits_the_callback_schema_exactly_when_the_ingest_accepts_it(
    body: dict[str, Any], product_id: object
) -> None:
    if product_id is not ABSENT:
        body = {**body, "productId": product_id}
    validator = Draft202012Validator({"$ref": "urn:ingest#/components/schemas/Callback"}, registry=REGISTRY)
    try:
        accepted = inspect(orjson.dumps(body))
    except InvalidCallback:
        accepted = None
    assert validator.is_valid(body) == (accepted is not None)
    if accepted is not None:
        other = Draft202012Validator({"$ref": "urn:ingest#/components/schemas/OtherProductNotice"}, registry=REGISTRY)
        assert other.is_valid(body) == isinstance(accepted, OtherProduct)
