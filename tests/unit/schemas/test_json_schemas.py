"""The JSON Schema files in schemas/json/ are current, valid, and describe what the processor really emits."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from processor.core.fold import Fold, RetentionPolicy, delivery_clock_ms, retire
from processor.simulation import SessionShape, deliver, generate_session
from schemas import export
from schemas.callbacks import Envelope
from schemas.decode import decode
from schemas.derived import DerivedEvent

STALE = "schemas/json/ is out of date: run `make schemas` and commit the result"
RENDERED = export.render_schemas()


def committed() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(export.SCHEMA_DIR.glob("*.json"))}


def test_no_schema_file_is_missing_or_extra() -> None:
    assert sorted(committed()) == sorted(RENDERED), STALE


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_each_committed_schema_file_equals_the_generated_one(name: str) -> None:
    path = export.SCHEMA_DIR / name
    assert path.exists(), f"{name} is missing: {STALE}"
    assert path.read_text(encoding="utf-8") == RENDERED[name], f"{name} differs: {STALE}"


def test_there_is_one_file_per_derived_event_kind_plus_the_union_and_the_state() -> None:
    kinds = {cls.model_fields["kind"].default for cls in export.derived_event_classes()}
    assert set(RENDERED) == {f"{kind}.json" for kind in kinds} | {"derived_event.json", "recording_state.json"}
    assert len(kinds) == len(export.derived_event_classes()) == 15


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_files_are_pretty_printed_with_sorted_keys_and_a_trailing_newline(name: str) -> None:
    text = RENDERED[name]
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_every_file_is_a_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(json.loads(RENDERED[name]))


def test_check_mode_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_check_mode_lists_stale_missing_and_extra_files_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(RENDERED)
    (tmp_path / "failover.json").write_text("{}\n")
    (tmp_path / "vod_started.json").unlink()
    (tmp_path / "retired_event.json").write_text("{}\n")
    capsys.readouterr()
    assert export.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "failover.json (out of date)" in err
    assert "vod_started.json (missing)" in err
    assert "retired_event.json (not generated)" in err
    assert "make schemas" in err
    # Writing again repairs all three.
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert export.main(["--check", "--dir", str(tmp_path)]) == 0


SHAPES = [
    SessionShape(minutes=3, users=2, failovers=2, interruptions=1, warnings=1, unknown_events=1, vod=True),
    SessionShape(minutes=2, mixed=True, fatal_error=True, skip_first_sequence=True),
]


def derived_events() -> list[DerivedEvent]:
    """Fold generated sessions, decoded from their bytes and delivered with resends, loss and reordering."""
    rng = random.Random(11)
    bodies = [body for shape in SHAPES for body in generate_session(rng, shape)]
    bodies += generate_session(rng, SessionShape(minutes=2))[:-4]  # never exits: it will expire
    arrivals = deliver(rng, bodies, max_delay_ms=40_000, duplicate_rate=0.2, drop_rate=0.05)
    callbacks = [decode(orjson.dumps(body)) for body in arrivals]
    assert all(isinstance(callback, Envelope) for callback in callbacks)
    fold = Fold()
    events: list[DerivedEvent] = []
    for callback in callbacks:
        events += fold.receive(callback, now_ms=delivery_clock_ms(callback)).derived  # type: ignore[arg-type]
    events += fold.finish()
    policy = RetentionPolicy()
    for tracked in fold.recordings.values():
        later = tracked.buffer.last_offer_ms + policy.inactivity_timeout_ms
        events += retire(tracked, now_ms=later, policy=policy)[1].derived
    return events


EVENTS = derived_events()


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(RENDERED[name]))


def test_the_generated_sessions_derive_every_kind_of_event() -> None:
    kinds = {event.kind for event in EVENTS}  # type: ignore[attr-defined]
    assert kinds == {cls.model_fields["kind"].default for cls in export.derived_event_classes()}


@pytest.mark.parametrize("kind", sorted({event.kind for event in EVENTS}))  # type: ignore[attr-defined]
def test_real_derived_events_conform_to_their_exported_schema(kind: str) -> None:
    own, union = validator(f"{kind}.json"), validator("derived_event.json")
    instances: list[Any] = [json.loads(e.model_dump_json()) for e in EVENTS if e.kind == kind]  # type: ignore[attr-defined]
    for instance in instances:
        assert not list(own.iter_errors(instance)), instance
        assert not list(union.iter_errors(instance)), instance


def test_a_derived_event_of_another_kind_does_not_conform() -> None:
    event = next(json.loads(e.model_dump_json()) for e in EVENTS if e.kind == "failover")  # type: ignore[attr-defined]
    assert not validator("failover.json").is_valid({**event, "kind": "status_changed"})
    assert not validator("derived_event.json").is_valid({**event, "failovers": "two"})


def test_recording_snapshots_conform_to_the_recording_state_schema() -> None:
    rng = random.Random(5)
    bodies = generate_session(rng, SessionShape(minutes=2, users=3, failovers=1, interruptions=2))
    fold = Fold()
    for raw in deliver(rng, bodies, max_delay_ms=5_000, duplicate_rate=0.3):
        callback = decode(orjson.dumps(raw))
        fold.receive(callback, now_ms=delivery_clock_ms(callback))  # type: ignore[arg-type]
    fold.finish()
    (state,) = fold.snapshots()
    assert state.failovers == 1
    schema = validator("recording_state.json")
    assert not list(schema.iter_errors(json.loads(state.model_dump_json())))
    assert not schema.is_valid({**json.loads(state.model_dump_json()), "status": "8"})
