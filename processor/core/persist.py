"""Persist one tracked recording, facts and reorder buffer alike, as JSON bytes, and load it back.

What a changelog-backed table stores per sid: a worker that loads it continues exactly where the one that
dumped it stopped, callbacks still held behind a missing number included. Held callbacks are stored as NCS
bodies and decoded again on load by the same decoder the live path uses.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from pydantic import TypeAdapter

from processor.core.fold import Tracked
from processor.core.machine import Recording
from processor.core.reorder import Lane, ReorderBuffer, ReorderPolicy, SequenceSet
from schemas import compiled
from schemas.compiled import AnyCallback, to_body
from schemas.decode import OtherProduct, Rejection, decode_object

#: Bumped whenever the stored shape changes; `load` refuses other versions rather than guess.
FORMAT_VERSION: Final = 1

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
    """Rebuild what `dump` stored, under the given reorder policy."""
    stored = orjson.loads(data)
    if not isinstance(stored, dict) or stored.get("version") != FORMAT_VERSION:
        raise StoredRecordingError(f"not a stored recording of format version {FORMAT_VERSION}")
    lanes = {lane["uid"]: _load_lane(lane) for lane in stored["lanes"]}
    buffer = ReorderBuffer(policy, lanes, stored["clock_ms"], stored["last_offer_ms"])
    position = stored.get("source_position")
    return Tracked(_RECORDING.validate_python(stored["recording"]), buffer, tuple(position) if position else None)


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
