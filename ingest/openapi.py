"""The ingest's OpenAPI 3.1 document, built from the constants its handlers use; served at GET /openapi.json."""

from __future__ import annotations

from typing import Any

from ingest.callback import TEST_CHANNEL, TEST_UID
from ingest.settings import PROVIDERS, IngestSettings
from ingest.signature import AGORA, ANYRTC
from schemas.callbacks import CLOUD_RECORDING_PRODUCT_ID
from schemas.decode import MAX_DEPTH, MAX_SAFE_INTEGER

PATH = "/openapi.json"
#: The callback addresses as OpenAPI writes them (the app routes each provider's path on its own).
CALLBACK_PATH_TEMPLATE = "/v1/callbacks/{provider}"

Json = dict[str, Any]

#: A productId spelled as a string: at most as many ASCII digits as MAX_SAFE_INTEGER has, blanks around them.
_DIGITS = len(str(MAX_SAFE_INTEGER))
SPELLED_PRODUCT_ID = rf"^\s*[0-9]{{1,{_DIGITS}}}\s*$"
SPELLED_RECORDING_PRODUCT_ID = rf"^\s*0{{0,{_DIGITS - 1}}}{CLOUD_RECORDING_PRODUCT_ID}\s*$"


def document(settings: IngestSettings) -> Json:
    """Return the OpenAPI document of an ingest configured by `settings`."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cloud Recording callback ingest",
            "version": "1",
            "description": (
                "Receives Agora and anyRTC Cloud Recording NCS callbacks, verifies their signature, checks just "
                "enough to key them, and answers 200 only once Kafka has acknowledged the raw body."
            ),
        },
        "paths": {
            CALLBACK_PATH_TEMPLATE: _callback_path(settings),
            "/healthz": _get_and_head("Liveness: 200 while the process serves requests.", _status_response("alive")),
            "/readyz": _get_and_head(
                "Readiness: 200 while Kafka answers and the process is not draining.",
                _status_response("ready"),
                {"503": _status_response("draining", "broker unreachable")},
            ),
            "/metrics": _get_and_head(
                "Prometheus metrics of this process.",
                {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {}}}},
            ),
            PATH: _get_and_head(
                "This document.",
                {"description": "The OpenAPI document", "content": {"application/json": {"schema": _ref("Document")}}},
            ),
        },
        "components": {
            "schemas": _schemas(),
            # An operation object would claim the method is supported (and `Allow` would then have to list it).
            "responses": {"MethodNotAllowed": _error("The path does not accept this method.", headers=["Allow"])},
            "securitySchemes": _security_schemes(),
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before sending the callback again (INGEST_RETRY_AFTER_S).",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
                "Allow": {
                    "description": "The methods the path accepts.",
                    "required": True,
                    "schema": {"type": "string"},
                },
            },
        },
    }


def _callback_path(settings: IngestSettings) -> Json:
    probe = {
        "summary": "Address check",
        "description": "NCS and its console check a new callback address: answered 200, never published.",
        "responses": {"200": _empty_ok("The address is live."), "404": _error("Unknown provider.")},
    }
    return {
        "description": (
            "Any other method is refused with 405 and an `Allow` header: `#/components/responses/MethodNotAllowed`."
        ),
        "parameters": [
            {
                "name": "provider",
                "in": "path",
                "required": True,
                "description": "Whose signature scheme and secrets verify the callback.",
                "schema": {"type": "string", "enum": list(PROVIDERS)},
            }
        ],
        "post": _post_callback(settings),
        "get": {**probe, "operationId": "probeCallbackAddress"},
        "head": {**_headers_only(probe), "operationId": "probeCallbackAddressHead"},
    }


def _post_callback(settings: IngestSettings) -> Json:
    return {
        "operationId": "postCallback",
        "summary": "One NCS callback",
        "description": (
            "The body is published to Kafka byte for byte, keyed by `payload.sid`, and answered 200 only after the "
            f"broker's acknowledgement. The console's test events (`payload.cname` {TEST_CHANNEL!r}, `payload.uid` "
            f"{TEST_UID!r}) are verified and answered 200 without `sid` or `eventType`, and never published. So are "
            f"the notices of other NCS products (a `productId` other than {CLOUD_RECORDING_PRODUCT_ID}, e.g. RTC "
            "channel events), which share the address when a project configured one URL for all. Of the signature "
            "headers, the first present decides, in the order Agora-Signature-V2, Agora-Signature (anyRTC: "
            "Ar-Signature first)."
        ),
        "security": [{name: []} for name in _security_schemes()],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("Callback")}},
        },
        "responses": {
            "200": _empty_ok("Durably stored; or, never published, a console test event or another product's notice."),
            "400": _error(
                "Not a keyable callback: not JSON, not an object, a `productId` that is no integer, no non-empty "
                f"string `payload.sid`, no integer `eventType`, nested deeper than {MAX_DEPTH} levels, or an object "
                "repeating a key."
            ),
            "401": _error("Missing signature, or none of the provider's secrets verifies it."),
            "404": _error("Unknown provider."),
            "408": _error(f"The body did not arrive within INGEST_BODY_TIMEOUT_S ({settings.body_timeout_s:g} s)."),
            "413": _error(
                f"The body, or its announced Content-Length, is over INGEST_MAX_BODY_BYTES ({settings.max_body_bytes} "
                "bytes)."
            ),
            "503": _error(
                "Kafka is unreachable or did not acknowledge within INGEST_PUBLISH_TIMEOUT_S "
                f"({settings.publish_timeout_s:g} s): send it again later.",
                headers=["Retry-After"],
            ),
        },
    }


def _get_and_head(description: str, ok: Json, others: Json | None = None) -> Json:
    get = {"summary": description, "responses": {"200": ok, **(others or {})}}
    return {"get": get, "head": _headers_only(get)}


def _headers_only(get: Json) -> Json:
    """The HEAD twin of a GET operation (aiohttp answers both): the same statuses, no bodies."""
    responses = {status: {"description": response["description"]} for status, response in get["responses"].items()}
    return {**get, "summary": f"{get['summary']} (headers only)", "responses": responses}


def _schemas() -> Json:
    return {
        "Callback": {
            "description": (
                "What the ingest checks of an NCS body: a Cloud Recording callback, or another product's notice; "
                f"every other field is kept as sent. Also refused: nesting deeper than {MAX_DEPTH} levels and "
                "objects repeating a key (neither expressible here)."
            ),
            "anyOf": [_ref("RecordingCallback"), _ref("OtherProductNotice")],
        },
        "RecordingCallback": {
            "description": "A Cloud Recording callback: published, keyed by `payload.sid`.",
            "type": "object",
            "required": ["eventType", "payload"],
            "properties": {
                "productId": {
                    "description": (
                        f"Cloud Recording ({CLOUD_RECORDING_PRODUCT_ID}), as a number or a string of digits. Legacy "
                        "bodies (before 2019-08) have none."
                    ),
                    "anyOf": [
                        {"const": CLOUD_RECORDING_PRODUCT_ID},
                        {"type": "string", "pattern": SPELLED_RECORDING_PRODUCT_ID},
                    ],
                },
                "eventType": {
                    "description": "The callback's type: any integer (40 or 40.0) is accepted and published.",
                    "type": "integer",
                    "minimum": -MAX_SAFE_INTEGER,
                    "maximum": MAX_SAFE_INTEGER,
                },
                "payload": {
                    "type": "object",
                    "required": ["sid"],
                    "properties": {
                        "sid": {
                            "description": "The recording session: the Kafka key.",
                            "type": "string",
                            "minLength": 1,
                        }
                    },
                },
                "noticeId": {"description": "Copied to the record's `notice-id` header when a string or integer."},
                "notificationId": {"description": "The legacy name of `noticeId`."},
            },
        },
        "OtherProductNotice": {
            "description": (
                "The notice of another NCS product (RTC channel events are productId 1): answered 200, counted, "
                "never published. Nothing else of it is checked."
            ),
            "type": "object",
            "required": ["productId"],
            "properties": {
                "productId": {
                    "description": "Any integer but Cloud Recording's, as a number or a string of digits.",
                    "anyOf": [
                        {
                            "type": "integer",
                            "minimum": -MAX_SAFE_INTEGER,
                            "maximum": MAX_SAFE_INTEGER,
                            "not": {"const": CLOUD_RECORDING_PRODUCT_ID},
                        },
                        {
                            "type": "string",
                            "pattern": SPELLED_PRODUCT_ID,
                            "not": {"pattern": SPELLED_RECORDING_PRODUCT_ID},
                        },
                    ],
                }
            },
        },
        "Empty": {
            "description": "NCS counts a 200 with a JSON body; its content is ignored.",
            "type": "object",
            "maxProperties": 0,
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"description": "Why the request was refused.", "type": "string"}},
        },
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        "Document": {"type": "object", "required": ["openapi", "info", "paths"]},
    }


def _security_schemes() -> Json:
    anyrtc_only = {scheme.header for scheme in ANYRTC} - {scheme.header for scheme in AGORA}
    schemes = {}
    for scheme in (*AGORA, *(s for s in ANYRTC if s.header in anyrtc_only)):
        where = "anyRTC only (assumed algorithm)" if scheme.header in anyrtc_only else "Agora and anyRTC"
        schemes[scheme.header.replace("-", "")] = {
            "type": "apiKey",
            "in": "header",
            "name": scheme.header,
            "description": (
                f"Lower-case hex HMAC-{scheme.digest.upper()} of the raw body with one of the provider's secrets "
                f"(INGEST_AGORA_SECRETS or INGEST_ANYRTC_SECRETS). {where}."
            ),
        }
    return schemes


def _empty_ok(description: str) -> Json:
    return {"description": description, "content": {"application/json": {"schema": _ref("Empty")}}}


def _error(description: str, *, headers: list[str] | None = None) -> Json:
    response: Json = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return response


def _status_response(*values: str) -> Json:
    schema = {"allOf": [_ref("Status"), {"properties": {"status": {"enum": list(values)}}}]}
    return {"description": " or ".join(values), "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}
