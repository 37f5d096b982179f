"""Persist one tracked recording, facts and reorder buffer alike, as JSON bytes, and load it back.

What a changelog-backed table stores per sid: a worker that loads it continues exactly where the one that
dumped it stopped, callbacks still held behind a missing number included. Held callbacks are stored as NCS
bodies and decoded again on load by the same decoder the live path uses. A value stored in an earlier format
version is upcast, one version at a time, to the current one before it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from pydantic import TypeAdapter

from processor.core.fold import Tracked
from processor.core.machine import Recording
from processor.core.reorder import Lane, ReorderBuffer, ReorderPolicy, SequenceSet
from schemas import compiled
from schemas.compiled import AnyCallback, to_body
from schemas.decode import OtherProduct, Rejection, decode_object

#: Bumped whenever the stored shape changes, with an upcaster from the version before in `UPCASTERS`.
FORMAT_VERSION: Final = 1

Stored = dict[str, Any]

_RECORDING: Final = TypeAdapter(Recording)


class StoredRecordingError(ValueError):
    """Stored bytes that are not a recording this version can load."""


def dump(tracked: Tracked) -> bytes:
    """Serialise a recording and its reorder buffer (the buffer's policy is configuration, not state)."""
    buffer = tracked.buffer
    recording = _RECORDING.dump_python(tracked.recording, mode="json")
    # A set serialises in insertion order: sort it, so that equal states store equal bytes.
    recording["discontinuities"] = sorted(recording["discontinuities"])
    stored = orjson.dumps(
        {
            "version": FORMAT_VERSION,
            "recording": recording,
            "clock_ms": buffer.clock_ms,
            "last_offer_ms": buffer.last_offer_ms,
            "lanes": [_dump_lane(lane) for lane in buffer.lanes.values()],
            "source_position": tracked.source_position,
        }
    )
    # orjson hands back its whole output buffer (about 8 KiB for a 1 KiB state) and the table keeps the value for
    # as long as the recording lives: a copy of the exact size keeps one-eighth of that.
    return bytes(memoryview(stored))


def load(data: bytes, policy: ReorderPolicy) -> Tracked:
    """Rebuild what `dump` stored, in this format version or an earlier one, under the given reorder policy."""
    stored = upcast(orjson.loads(data))
    lanes = {lane["uid"]: _load_lane(lane) for lane in stored["lanes"]}
    buffer = ReorderBuffer(policy, lanes, stored["clock_ms"], stored["last_offer_ms"])
    position = stored["source_position"]
    return Tracked(_RECORDING.validate_python(stored["recording"]), buffer, tuple(position) if position else None)


def upcast(value: object) -> Stored:
    """Bring a stored value of any version `UPCASTERS` reaches up to `FORMAT_VERSION`, one version at a time."""
    if not isinstance(value, dict):
        raise StoredRecordingError("not a stored recording: not a JSON object")
    stored: Stored = value
    version = stored_version(stored)
    if version is None:
        raise StoredRecordingError("not a stored recording: no format version")
    if version > FORMAT_VERSION:
        raise StoredRecordingError(
            f"stored in format version {version}, newer than this worker reads ({FORMAT_VERSION}): roll forward"
        )
    while version < FORMAT_VERSION:
        upcaster = UPCASTERS.get(version)
        if upcaster is None:
            raise StoredRecordingError(
                f"no upcaster from format version {version} (this worker reads {FORMAT_VERSION})"
            )
        stored = upcaster(stored)
        version += 1
    return stored


def stored_version(stored: Stored) -> int | None:
    """Return the format version of a stored value, or None if it has none."""
    version = stored.get("version")
    if type(version) is not int:
        return None
    # The first releases stored their shape under 1 as well, before `last_offer_ms` (1e461f3) and then
    # `source_position` (24d55b5) were added: what lacks either is that shape, version 0.
    if version == 1 and not ("last_offer_ms" in stored and "source_position" in stored):
        return 0
    return version


def _from_0(stored: Stored) -> Stored:
    """Version 0 → 1: add the buffer's last offer time and the source position, which version 0 did not keep."""
    return {
        **stored,
        "version": 1,
        # The buffer's clock is the latest time it was shown, so no offer came later: taken as the last one,
        # retention counts from the latest moment the recording can have been heard from.
        "last_offer_ms": stored.get("last_offer_ms", stored["clock_ms"]),
        # Unknown: every raw record re-read after a restart then folds in again (as before positions were kept).
        "source_position": stored.get("source_position"),
    }


#: Format version → what turns a stored value of that version into one of the next: `load` reads every version
#: from the lowest listed here up to `FORMAT_VERSION`. A format change adds its upcaster, never edits one.
UPCASTERS: Final[Mapping[int, Callable[[Stored], Stored]]] = {0: _from_0}


def _dump_lane(lane: Lane) -> dict[str, Any]:
    return {
        "uid": lane.uid,
        "starts": sorted(lane.starts),
        "next_sequence": lane.next_sequence,
        "received": lane.received().ranges,
        "pending": [[arrived_ms, _body(callback)] for callback, arrived_ms in lane.pending.values()],
    }


def _body(callback: AnyCallback) -> dict[str, Any]:
    # Either form stores what the contract's model dumps (a compiled twin has no extras to keep).
    return to_body(callback) if isinstance(callback, compiled.Envelope) else callback.model_dump(mode="json")


def _load_lane(stored: dict[str, Any]) -> Lane:
    pending: dict[int, tuple[AnyCallback, int]] = {}
    for arrived_ms, body in stored["pending"]:
        callback = decode_object(body)
        if isinstance(callback, Rejection | OtherProduct):
            raise StoredRecordingError(f"a held callback no longer decodes: {callback}")
        pending[callback.payload.sequence] = (callback, arrived_ms)
    return Lane(
        uid=stored["uid"],
        starts=set(stored["starts"]),
        next_sequence=stored["next_sequence"],
        # Stored: every number received. Kept: those released (below `next_sequence`); the held ones are pending's.
        passed=SequenceSet([list(pair) for pair in stored["received"]]).below(stored["next_sequence"]),
        pending=pending,
    )
