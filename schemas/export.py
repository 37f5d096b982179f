"""Write the JSON Schema files of derived events and RecordingState into schemas/json/ (`--check` compares)."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.derived import DERIVED_EVENT_ADAPTER, AnyDerivedEvent
from schemas.state import RecordingState

#: Where the generated files live (shipped as package data).
SCHEMA_DIR = Path(__file__).parent / "json"


def derived_event_classes() -> tuple[type[BaseModel], ...]:
    """Return the classes of the derived-event union, in its order."""
    union = typing.get_args(AnyDerivedEvent)[0]
    return tuple(typing.get_args(union))


def _kind(cls: type[BaseModel]) -> str:
    default = cls.model_fields["kind"].default
    if not isinstance(default, str):
        raise TypeError(f"{cls.__name__}.kind has no string default")
    return default


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """Return every schema file's name and text, as `python -m schemas.export` writes them."""
    rendered = {f"{_kind(cls)}.json": _text(cls.model_json_schema()) for cls in derived_event_classes()}
    rendered["derived_event.json"] = _text(DERIVED_EVENT_ADAPTER.json_schema())
    rendered["recording_state.json"] = _text(RecordingState.model_json_schema())
    return dict(sorted(rendered.items()))


def stale_files(directory: Path, rendered: dict[str, str]) -> Iterator[str]:
    """Yield each file that is missing, out of date or not generated, with why."""
    present = {path.name for path in directory.glob("*.json")}
    for name, text in rendered.items():
        if name not in present:
            yield f"{name} (missing)"
        elif (directory / name).read_text(encoding="utf-8") != text:
            yield f"{name} (out of date)"
    yield from (f"{name} (not generated)" for name in sorted(present - rendered.keys()))


def main(argv: list[str] | None = None) -> int:
    """Write the schema files, or with --check list the stale ones and return 1."""
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory: Path = args.dir
    rendered = render_schemas()
    if args.check:
        stale = list(stale_files(directory, rendered))
        for entry in stale:
            print(f"stale: {directory / entry}", file=sys.stderr)
        if stale:
            print("run `make schemas` to regenerate them", file=sys.stderr)
        return 1 if stale else 0
    directory.mkdir(parents=True, exist_ok=True)
    for stale_name in {path.name for path in directory.glob("*.json")} - rendered.keys():
        (directory / stale_name).unlink()
    for name, text in rendered.items():
        (directory / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
