"""Decode one raw NCS body: orjson parse, then validation into a typed Callback or an explained Rejection."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from schemas.callbacks import CALLBACK_TYPE, CLOUD_RECORDING_PRODUCT_ID, EVENT_TYPES, Callback, UnknownEvent

#: Built once: pydantic compiles the validator for the whole tagged union here, not per call.
CALLBACK_ADAPTER: TypeAdapter[Callback] = TypeAdapter(CALLBACK_TYPE)

RejectionKind = Literal["not_json", "not_an_object", "invalid"]


class FieldProblem(BaseModel):
    """One reason a body was refused: where in the body, and why."""

    model_config = ConfigDict(frozen=True)

    field: str
    problem: str


class Rejection(BaseModel):
    """A body that cannot be a callback, with every reason (never a stack trace)."""

    model_config = ConfigDict(frozen=True)

    kind: RejectionKind
    reason: str
    problems: tuple[FieldProblem, ...] = ()


class OtherProduct(BaseModel):
    """A notice of another NCS product (productId ≠ 3): not ours to interpret, counted and skipped."""

    model_config = ConfigDict(frozen=True)

    product_id: int


Decoded = Callback | Rejection | OtherProduct


def decode(raw: bytes | str) -> Decoded:
    """Parse one NCS body into its typed callback, or say exactly why it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Rejection(kind="not_json", reason=f"not JSON: {error}")
    return decode_object(body)


def decode_object(body: Any) -> Decoded:
    """Validate an already parsed JSON value as a callback."""
    if not isinstance(body, dict):
        return Rejection(kind="not_an_object", reason=f"not a JSON object but {type(body).__name__}")
    product_id = body.get("productId", CLOUD_RECORDING_PRODUCT_ID)
    if isinstance(product_id, str) and product_id.strip().isdigit():
        # As for eventType below: "7" is another product, not a malformed recording callback.
        product_id = int(product_id)
    if isinstance(product_id, int) and product_id != CLOUD_RECORDING_PRODUCT_ID:
        # Other products number their events differently: recording schemas do not apply.
        return OtherProduct(product_id=product_id)
    event_type = body.get("eventType")
    if isinstance(event_type, str) and event_type.strip().isdigit():
        # Numbers arrive as strings in the wild; a Literal[42] tag would refuse "42".
        body = {**body, "eventType": int(event_type)}
    try:
        decoded = CALLBACK_ADAPTER.validate_python(body)
    except ValidationError as error:
        problems = tuple(_problem(detail) for detail in error.errors(include_url=False, include_input=False))
        reason = "; ".join(f"{p.field}: {p.problem}" for p in problems)
        return Rejection(kind="invalid", reason=reason, problems=problems)
    if isinstance(decoded, UnknownEvent) and decoded.eventType in EVENT_TYPES:
        # The tag only sees ints, but lax parsing read a documented type (42.0, "42.0"): dispatch on that.
        return decode_object({**body, "eventType": decoded.eventType})
    return decoded


def _problem(detail: Any) -> FieldProblem:
    # The union tag ("42", "unknown") is pydantic's own step in the location, not a field of the body.
    location = [str(part) for part in detail["loc"][1:]] if detail["loc"] else []
    return FieldProblem(field=".".join(location) or "(body)", problem=str(detail["msg"]))
