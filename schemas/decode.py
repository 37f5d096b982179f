"""Decode one raw NCS body: orjson parse, then validation into a typed Callback or an explained Rejection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from schemas.callbacks import CALLBACK_TYPE, CLOUD_RECORDING_PRODUCT_ID, EVENT_TYPES, Callback, UnknownEvent

#: Built once: pydantic compiles the validator for the whole tagged union here, not per call.
CALLBACK_ADAPTER: TypeAdapter[Callback] = TypeAdapter(CALLBACK_TYPE)

RejectionKind = Literal["not_json", "not_an_object", "invalid"]

#: NCS bodies nest five levels at most (envelope, payload, details, fileList, file). Far deeper ones are broken
#: or hostile, and past ~250 levels the held callback, the derived event or the stored recording can no longer be
#: serialised (pydantic's and orjson's own depth limits): refuse them here, where the reason can be told.
MAX_DEPTH = 32
#: The integers a JSON peer can exchange exactly (I-JSON, RFC 7493 §2.2). Documented fields hold Unix ms, uids,
#: counters and codes, all far below it; past it a JavaScript reader of the derived topics would misread them,
#: and sums or `sequence + 1` could overflow the 64 bits the stored recording is written with.
MAX_SAFE_INTEGER = 2**53 - 1
_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER))
#: What pydantic's lax mode reads as an integer: ASCII digits, sign, underscores, blanks, a ".0" fraction.
_LAX_INTEGER_CHARS = " \t\n\r+-_.0123456789"


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
    found = shape(body)
    if found.too_deep:
        return _invalid(FieldProblem(field="(body)", problem=f"nested deeper than {MAX_DEPTH} levels"))
    product_id = body.get("productId", CLOUD_RECORDING_PRODUCT_ID)
    # As for eventType below: "7" is another product, not a malformed recording callback.
    product_id = spelled_integer(product_id) if isinstance(product_id, str) else product_id
    if type(product_id) is int and product_id != CLOUD_RECORDING_PRODUCT_ID:
        # Other products number their events differently: recording schemas do not apply.
        return OtherProduct(product_id=product_id)
    event_type = body.get("eventType")
    if isinstance(event_type, str) and (spelled := spelled_integer(event_type)) is not None:
        # Numbers arrive as strings in the wild; a Literal[42] tag would refuse "42".
        body = {**body, "eventType": spelled}
        if spelled > MAX_SAFE_INTEGER:  # refused as the number it spells is: a held callback is stored as that
            found = Shape(too_deep=False, big_numbers=True)
    try:
        decoded = CALLBACK_ADAPTER.validate_python(body)
    except ValidationError as error:
        return _invalid(*(_problem(detail) for detail in error.errors(include_url=False, include_input=False)))
    if isinstance(decoded, UnknownEvent) and decoded.eventType in EVENT_TYPES:
        # The tag only sees ints, but lax parsing read a documented type (42.0, "42.0"): dispatch on that.
        return decode_object({**body, "eventType": decoded.eventType})
    if decoded.productId != CLOUD_RECORDING_PRODUCT_ID:
        # Lax parsing read another product where the check above could not (7.0, false): the same verdict, so
        # that a callback always decodes again from its own dump (held callbacks are stored that way).
        return OtherProduct(product_id=decoded.productId)
    if not found.big_numbers:  # the common case: no need to look at which field holds it
        return decoded
    unsafe = [FieldProblem(field=field, problem=f"beyond ±{MAX_SAFE_INTEGER}") for field in _unsafe_integers(decoded)]
    # A big number in a field we do not model passes through untouched: only documented fields are computed with.
    return _invalid(*unsafe) if unsafe else decoded


class Shape(NamedTuple):
    """What one walk over a parsed body found: nesting past MAX_DEPTH, numbers past MAX_SAFE_INTEGER."""

    too_deep: bool
    big_numbers: bool


def shape(value: Any) -> Shape:
    """Walk a parsed JSON value once (iteratively: depth must not exhaust Python's own recursion limit)."""
    big = False
    stack = [(value, 1)] if type(value) is dict or type(value) is list else []
    while stack:
        container, depth = stack.pop()
        for child in container.values() if type(container) is dict else container:
            kind = type(child)  # exact types, as orjson builds them (a bool is not an int here), for speed
            if kind is dict or kind is list:
                if depth >= MAX_DEPTH:
                    return Shape(too_deep=True, big_numbers=big)
                stack.append((child, depth + 1))
            elif (kind is int or kind is float) and not -MAX_SAFE_INTEGER <= child <= MAX_SAFE_INTEGER:
                big = True
            elif kind is str and len(child) > _SAFE_DIGITS and not child.strip(_LAX_INTEGER_CHARS):
                big = True  # a string lax validation may read as a number (the common long strings fail at once)
    return Shape(too_deep=False, big_numbers=big)


def spelled_integer(text: str) -> int | None:
    """Return the integer a string spells in ASCII digits ("42", " 7 "), else None."""
    digits = text.strip()
    # ASCII only: int() also reads other scripts' digits, which pydantic would refuse. Bounded length: past
    # MAX_SAFE_INTEGER the number is refused anyway, and int() raises on thousands of digits.
    if digits.isascii() and digits.isdigit() and len(digits) <= _SAFE_DIGITS:
        return int(digits)
    return None


def _unsafe_integers(model: BaseModel, prefix: str = "") -> Iterator[str]:
    """Yield the documented integer fields of a decoded callback beyond MAX_SAFE_INTEGER (unknown fields pass)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = enumerate(value) if isinstance(value, tuple) else [(None, value)]
        for index, item in values:
            where = f"{prefix}{name}" if index is None else f"{prefix}{name}.{index}"
            if isinstance(item, BaseModel):
                yield from _unsafe_integers(item, f"{where}.")
            elif isinstance(item, int) and abs(item) > MAX_SAFE_INTEGER:
                yield where


def _invalid(*problems: FieldProblem) -> Rejection:
    return Rejection(kind="invalid", reason="; ".join(f"{p.field}: {p.problem}" for p in problems), problems=problems)


def _problem(detail: Any) -> FieldProblem:
    # The union tag ("42", "unknown") is pydantic's own step in the location, not a field of the body.
    location = [str(part) for part in detail["loc"][1:]] if detail["loc"] else []
    return FieldProblem(field=".".join(location) or "(body)", problem=str(detail["msg"]))
