"""The compiled decoder (`schemas.compiled.decode_fast`) says what the contract (`schemas.decode.decode`) says.

Same accept/reject decision and the same value in every documented field, for arbitrary bytes and JSON, for
mutated callbacks, for realistic sessions and the vendor corpus; and folding either form ends in the same state.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from processor.core.fold import Fold, handle, snapshot, track
from processor.core.persist import dump, load
from processor.core.reorder import ReorderPolicy
from processor.simulation import deliver
from schemas import compiled
from schemas.callbacks import Envelope
from schemas.compiled import decode_fast, to_body
from schemas.decode import MAX_DEPTH, MAX_SAFE_INTEGER, OtherProduct, Rejection, decode, decode_object
from tests.unit.strategies import JSON, callback_bodies, deeply_nested_bodies, sessions, text_of

CORPUS = Path(__file__).parents[2] / "corpus"
AGREE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The extras a twin accepts, by where (not compared: the contract keeps them as extras, not as fields).
TWIN_EXTRAS = {compiled.Envelope: {"sid", "serviceScene"}, compiled.Details: {"msgName"}}


def documented(model: BaseModel) -> dict[str, Any]:
    """The contract's documented field values, recursively, without the extras it keeps."""
    values: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            value = documented(value)
        elif isinstance(value, tuple):
            value = [documented(item) if isinstance(item, BaseModel) else item for item in value]
        values[name] = value
    return values


def twin_values(twin: msgspec.Struct) -> dict[str, Any]:
    """The twin's field values the same way (tuples as lists), extras aside."""
    values: dict[str, Any] = {}
    for name in twin.__struct_fields__:
        value = getattr(twin, name)
        if any(isinstance(twin, cls) and name in extras for cls, extras in TWIN_EXTRAS.items()):
            continue
        if isinstance(value, msgspec.Struct):
            value = twin_values(value)
        elif isinstance(value, tuple):
            value = [twin_values(item) if isinstance(item, msgspec.Struct) else item for item in value]
        values[name] = value
    if isinstance(twin, compiled.Envelope):
        values["eventType"] = twin.eventType
    return values


def assert_agree(raw: bytes | str) -> None:
    """The compiled decoder's verdict on `raw` is the contract's."""
    fast, contract = decode_fast(raw), decode(raw)
    if isinstance(fast, compiled.Envelope):
        assert isinstance(contract, Envelope), (raw, contract)
        assert type(fast).__name__ == type(contract).__name__
        assert twin_values(fast) == documented(contract)
        # Stored as the contract's model dumps itself (extras aside), and decoded again to the same callback.
        assert decode_object(to_body(fast)) == decode_object(documented(contract))
        assert to_body(fast) == decode_object(to_body(fast)).model_dump(mode="json")  # type: ignore[union-attr]
    else:
        assert type(fast) is type(contract)
        assert fast == contract


@AGREE
@given(raw=st.binary(max_size=300))
def test_agree_on_arbitrary_bytes(raw):
    assert_agree(raw)


@AGREE
@given(value=JSON)
def test_agree_on_arbitrary_json(value):
    assert_agree(text_of(value))


@AGREE
@given(body=callback_bodies())
def test_agree_on_callbacks_with_arbitrary_json_in_their_fields(body):
    assert_agree(text_of(body))


@AGREE
@given(raw=deeply_nested_bodies())
def test_agree_on_deeply_nested_bodies(raw):
    assert_agree(raw)


#: Byte-level damage orjson and msgspec might judge differently: broken UTF-8, a BOM, NaN, out-of-range numbers,
#: lone surrogates, control characters, trailing content, a repeated key (the last one counts).
DAMAGE = st.sampled_from(
    [
        (b'"room"', b'"ro\xffom"'),
        (b'"room"', b'"\\ud800"'),
        (b'"room"', b'"r\x01"'),
        (b'"room"', b"NaN"),
        (b'"room"', b"1e400"),
        (b'"room"', b'"room","cname":7'),
        (b'"room"', b'"room","cname":"other"'),
        (b'"productId":3', b'"productId":3,"productId":7'),
        (b'"productId":3', b'"productId":3.0'),
        (b'"productId":3', b'"productId":true'),
        (b'"sequence":', b'"sequence":1,"sequence":'),
        (b'"sequence":', b'"sequence":"x","sequence":'),
        (b'"eventType":', b'"eventType":33,"eventType":'),
        (b'"eventType":', b'"eventType":"42","eventType":'),
        (b'"notifyMs":', b'"notifyMs":' + str(MAX_SAFE_INTEGER + 1).encode() + b',"x":'),
        (b'"sendts":', b'"sendts":' + str(2**64).encode() + b',"x":'),
        (b"{", b"\xef\xbb\xbf{"),
        (b"}", b"} x"),
        (b"}", b"}\n"),
        (b'"sid"', b'"sid":"","s"'),
        (b'"details":', b'"details":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b',"x":'),
    ]
)


@AGREE
@given(body=callback_bodies(), damage=DAMAGE)
def test_agree_on_damaged_bytes(body, damage):
    old, new = damage
    compact = json.dumps(body, allow_nan=True, separators=(",", ":")).encode()
    assert_agree(compact.replace(old, new, 1))


def test_agree_on_every_kind_of_verdict():
    good = {"eventType": 33, "payload": {"sid": "s", "sequence": 0, "details": {"progress": 1}}}
    cases = {
        "not_json": b"{",
        "not_an_object": b"[1]",
        "invalid": orjson.dumps({**good, "payload": {"sid": "", "sequence": -1, "details": {}}}),
        "too_deep": orjson.dumps({**good, "x": json.loads("[" * 40 + "]" * 40)}),
        "big_number": orjson.dumps({**good, "notifyMs": MAX_SAFE_INTEGER + 1}),
        "other_product": orjson.dumps({**good, "productId": 7}),
        "callback": orjson.dumps(good),
        "unknown_event": orjson.dumps({**good, "eventType": 45}),
        "legacy_names": orjson.dumps({**good, "notificationId": "n", "eventMs": 5}),
    }
    verdicts = {name: decode(raw) for name, raw in cases.items()}
    assert {name: getattr(v, "kind", type(v).__name__) for name, v in verdicts.items()} == {
        "not_json": "not_json",
        "not_an_object": "not_an_object",
        "invalid": "invalid",
        "too_deep": "invalid",
        "big_number": "invalid",
        "other_product": "OtherProduct",
        "callback": "UploadingProgress",
        "unknown_event": "UnknownEvent",
        "legacy_names": "UploadingProgress",
    }
    for raw in cases.values():
        assert_agree(raw)
    assert isinstance(decode_fast(cases["callback"]), compiled.UploadingProgress)


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.json*")), ids=lambda p: str(p.relative_to(CORPUS)))
def test_agree_on_the_vendor_corpus(path):
    for line in path.read_bytes().splitlines() if path.suffix == ".jsonl" else [path.read_bytes()]:
        assert_agree(line)
        assert_agree(line.decode())


def test_realistic_bodies_take_the_compiled_path():
    """The corpus's documented bodies are canonical: none falls back to the contract (else nothing is gained)."""
    for path in sorted((CORPUS / "documented").glob("*.json")):
        assert isinstance(decode_fast(path.read_bytes()), compiled.Envelope), path.name


def arrivals(session: list[dict[str, Any]], seed: int) -> list[bytes]:
    """A session delivered with NCS's noise (shuffled, resent), as raw bodies."""
    return [
        orjson.dumps(body) for body in deliver(random.Random(seed), session, max_delay_ms=5_000, duplicate_rate=0.2)
    ]


def fold_lines(lines: list[bytes], read: Any) -> tuple[Fold, list[Any]]:
    fold, events = Fold(), []
    for line in lines:
        callback = read(line)
        events += fold.receive(callback, now_ms=callback.notifyMs or 0).derived
    return fold, events + fold.finish()


@settings(max_examples=60, deadline=None)
@given(session=sessions(), seed=st.integers(0, 2**32 - 1))
def test_realistic_sessions_agree_and_fold_to_the_same_state_and_events_in_either_form(session, seed):
    lines = arrivals(session, seed)
    for line in lines:
        assert_agree(line)
    fast, fast_events = fold_lines(lines, decode_fast)
    contract, contract_events = fold_lines(lines, decode)
    assert fast_events == contract_events
    assert fast.snapshots() == contract.snapshots()


@settings(max_examples=60, deadline=None)
@given(session=sessions(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_a_reloaded_recording_of_compiled_callbacks_continues_exactly_like_one_never_stopped(session, seed, data):
    callbacks = [decode_fast(line) for line in arrivals(session, seed)]
    stop = data.draw(st.integers(0, len(callbacks)))
    policy = ReorderPolicy()
    sid = callbacks[0].payload.sid  # type: ignore[union-attr]
    straight, restarted, twin = track(sid, policy), track(sid, policy), track(sid, policy)
    straight_events, restarted_events = [], []
    for index, callback in enumerate(callbacks):
        if index == stop:
            restarted = load(dump(restarted), policy)
        straight_events += handle(straight, callback, now_ms=callback.notifyMs or 0).derived  # type: ignore[union-attr]
        restarted_events += handle(restarted, callback, now_ms=callback.notifyMs or 0).derived  # type: ignore[union-attr]
        contract = decode_object(to_body(callback)) if isinstance(callback, compiled.Envelope) else callback
        handle(twin, contract, now_ms=callback.notifyMs or 0)  # type: ignore[union-attr, arg-type]
    assert restarted_events == straight_events
    assert snapshot(restarted) == snapshot(straight) == snapshot(twin)
    # Held twins are stored exactly as their contract models are.
    assert dump(restarted) == dump(straight) == dump(twin)


def test_file_lists_are_normalised_as_the_contract_does():
    for file_list, names in [("a.m3u8", ("a.m3u8",)), ("", ()), (None, ()), ([{"fileName": "b"}], ("b",))]:
        raw = orjson.dumps({"eventType": 4, "payload": {"sid": "s", "sequence": 0, "details": {"fileList": file_list}}})
        fast = decode_fast(raw)
        assert isinstance(fast, compiled.CloudRecordingFileInfos)
        assert tuple(file.fileName for file in fast.payload.details.fileList) == names
        assert_agree(raw)


def test_rejections_and_other_products_are_the_contracts_own():
    assert isinstance(decode_fast(b"nope"), Rejection)
    assert decode_fast(b'{"productId": 7}') == OtherProduct(product_id=7)
