"""The benchmarks' input: realistic simulated recordings, delivered with NCS-like noise, and what they add up to."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace

import orjson

from processor.core.fold import fold_all
from processor.simulation import Body, deliver, generate_session, random_shape
from schemas.decode import decode

START_MS = 1_700_000_000_000
#: Recordings start this far apart (session time), so a few dozen are running at any moment.
START_SPACING_MS = 7_000


@dataclass(frozen=True, slots=True)
class Workload:
    """Deliveries of whole recordings in arrival order, as raw bodies, and the sessions they came from."""

    lines: list[bytes]
    sessions: list[list[Body]]

    @property
    def recordings(self) -> int:
        """Return how many recordings the deliveries belong to."""
        return len(self.sessions)

    def per_recording_rate(self) -> float:
        """Return deliveries per recording per second of session time (all recordings pooled).

        Session time runs from a recording's first callback to its last, as the simulator numbers them;
        deliveries include the resends of the workload's noise.
        """
        seconds = sum((session[-1]["notifyMs"] - session[0]["notifyMs"]) / 1000 for session in self.sessions)
        return float(len(self.lines) / seconds)


def build(records: int, *, seed: int, max_delay_ms: int, duplicate_rate: float) -> Workload:
    """Generate whole recordings until their deliveries number at least `records`; interleave them by arrival.

    No delivery is lost and every recording's `sequence` starts at 0, so the live worker's final state does not
    depend on its wall clock (no hole waits for the gap timeout) and equals a replay's: the benchmarks check it.
    """
    rng = random.Random(seed)
    sessions: list[list[Body]] = []
    arrivals: list[Body] = []
    while len(arrivals) < records:
        shape = replace(random_shape(rng), skip_first_sequence=False)
        session = generate_session(rng, shape, start_ms=START_MS + len(sessions) * START_SPACING_MS)
        sessions.append(session)
        arrivals += deliver(rng, session, max_delay_ms=max_delay_ms, duplicate_rate=duplicate_rate)
    arrivals.sort(key=lambda body: int(body["notifyMs"]))  # stable: one recording's ties keep deliver()'s order
    return Workload([orjson.dumps(body) for body in arrivals], sessions)


def noisy(records: int, *, seed: int) -> Workload:
    """Shuffled within 3 s and 20 % resent, as the worker tests' traffic (the processor and rebuild input)."""
    return build(records, seed=seed, max_delay_ms=3_000, duplicate_rate=0.2)


def final_states(lines: list[bytes]) -> dict[str, dict[str, object]]:
    """Return what `replay --summary` says of these bodies: sid → snapshot (the state topic's last word)."""
    decoded = [decode(line) for line in lines]
    fold = fold_all([callback for callback in decoded if hasattr(callback, "payload")])  # type: ignore[misc]
    return {state.sid: json.loads(state.model_dump_json()) for state in fold.snapshots()}


def sid_of(line: bytes) -> bytes:
    """Return the Kafka key the ingest gives a body: its `payload.sid`."""
    return str(orjson.loads(line)["payload"]["sid"]).encode()
