"""Hypothesis strategies the unit tests share: realistic sessions, and arbitrary or hostile callback bodies."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from processor.simulation import SessionShape, generate_session
from schemas.callbacks import Callback
from schemas.decode import MAX_DEPTH, MAX_SAFE_INTEGER, decode_object
from tests.unit.builders import T0

Body = dict[str, Any]

shapes = st.builds(
    SessionShape,
    minutes=st.integers(1, 6),
    users=st.integers(1, 3),
    mixed=st.booleans(),
    failovers=st.integers(0, 3),
    restart_sequence_on_failover=st.booleans(),
    interruptions=st.integers(0, 2),
    fatal_error=st.booleans(),
    warnings=st.integers(0, 2),
    vod=st.booleans(),
    unknown_events=st.integers(0, 2),
    skip_first_sequence=st.booleans(),
)


@st.composite
def sessions(draw: st.DrawFn, shape: st.SearchStrategy[SessionShape] = shapes) -> list[Body]:
    """A realistic session: the bodies one recording sends, in service order."""
    return generate_session(random.Random(draw(st.integers(0, 2**32 - 1))), draw(shape))


def arriving(bodies: list[Body]) -> list[Callback]:
    """Decode bodies delivered one millisecond apart: a whole session well inside the gap timeout."""
    start = bodies[0]["notifyMs"] if bodies else 0
    decoded = [decode_object({**body, "notifyMs": start + index}) for index, body in enumerate(bodies)]
    assert all(not hasattr(callback, "reason") for callback in decoded)
    return decoded  # type: ignore[return-value]


#: Numbers at every edge the core cares about: 0, the I-JSON limit, 64 bits, beyond what a double holds.
EDGE_INTEGERS = st.sampled_from(
    [0, -1, 1, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30]
)
NUMBERS = (
    st.integers()
    | EDGE_INTEGERS
    | st.floats(allow_nan=True, allow_infinity=True)
    | EDGE_INTEGERS.map(float)
    | EDGE_INTEGERS.map(str)
    | st.sampled_from(["9" * 5000, " 42 ", "42.0", "4_2", "\u0663", "1e400"])
)
LEAVES = st.none() | st.booleans() | NUMBERS | st.text(max_size=12)
JSON = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
#: One documented (valid) `details` per eventType, plus undocumented types that pass through.
DETAILS: dict[int, dict[str, Any]] = {
    1: {"module": 0, "errorLevel": 5, "errorCode": 52, "stat": 0, "errorMsg": "start timeout"},
    2: {"module": 1, "warnCode": 31},
    3: {"status": 4, "recordingMode": 0, "fileList": "a.m3u8"},
    4: {"fileList": "a.m3u8"},
    11: {"exitStatus": 0},
    12: {"newUid": 2002},
    30: {"status": 0},
    31: {"status": 0, "fileList": [{"fileName": "a.ts", "trackType": "audio", "uid": "1", "sliceStartTime": T0}]},
    32: {"status": 0, "fileList": [{"fileName": "b.ts", "mixedAllUser": True, "isPlayable": True}]},
    33: {"progress": 5000},
    40: {"status": 0},
    41: {"leaveCode": 6},
    42: {"startUtcMs": T0 + 10, "discontinueUtcMs": T0, "streamUid": "0", "trackType": "audio"},
    43: {"streamUid": "1", "state": 1, "UtcMs": T0},
    44: {"streamUid": "1", "state": 0, "utcMs": T0},
    60: {"aliVodInfo": {"videoId": "v-1"}},
    61: {},
    13: {},
    45: {"fileName": "s.jpg"},
    1001: {"result": [1, {"a": None}]},
}
Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every place in a JSON value where another value could stand (its keys and items, recursively)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found: list[Path] = []
    for key, child in children:
        found += [(*prefix, key), *paths(child, (*prefix, key))]
    return found


def replaced(body: Any, path: Path, value: Any) -> None:
    """Put `value` at `path` (a dict key may be new: that is how unknown fields appear)."""
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = value


@st.composite
def callback_bodies(draw: st.DrawFn) -> Any:
    """A documented callback of any eventType, then arbitrary JSON put at a few of its fields (or removed)."""
    event_type = draw(st.sampled_from(sorted(DETAILS)))
    body = {
        "noticeId": draw(st.text(max_size=8)),
        "productId": 3,
        "eventType": event_type,
        "notifyMs": T0 + draw(st.integers(min_value=0, max_value=100_000)),
        "payload": {
            "cname": draw(st.sampled_from(["room", "test_webhook"])),
            "uid": draw(st.sampled_from(["1001", "2002", 1001])),
            "sid": draw(st.sampled_from(["sid-a", "sid-b"])),
            "sequence": draw(st.integers(min_value=0, max_value=6)),
            "sendts": T0 + draw(st.integers(min_value=0, max_value=100_000)),
            "serviceType": 0,
            "details": json.loads(json.dumps(DETAILS[event_type])),
        },
    }
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(paths(body)))
        if draw(st.booleans()) and isinstance(path[-1], str) and len(path) > 1:
            del_from = body
            for key in path[:-1]:
                del_from = del_from[key]
            del_from.pop(path[-1], None)
        else:
            replaced(body, path, draw(JSON))
    if draw(st.booleans()):
        where = draw(st.sampled_from([p for p in [(), *paths(body)] if isinstance(_at(body, p), dict)]))
        replaced(
            body, (*where, draw(st.sampled_from(["extra", "eventType", "sid", "utcMs", "notificationId"]))), draw(JSON)
        )
    return body


def _at(body: Any, path: Path) -> Any:
    for key in path:
        body = body[key]
    return body


def nested(depth: int, *, kind: str) -> str:
    """Return JSON text nesting `depth` arrays (or objects) around a number."""
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


#: Around the limit, and from where serialisers give up (~250) to past orjson's own limit (1024).
DEPTHS = st.integers(min_value=MAX_DEPTH - 3, max_value=MAX_DEPTH + 1) | st.integers(min_value=200, max_value=2000)


@st.composite
def deeply_nested_bodies(draw: st.DrawFn, *, depths: st.SearchStrategy[int] = DEPTHS) -> bytes:
    """A callback body with a value nested `depths` levels deep in one of its objects."""
    body = draw(callback_bodies())
    placeholder = "@@deep@@"
    where = draw(st.sampled_from([p for p in [(), *paths(body)] if isinstance(_at(body, p), dict)]))
    replaced(body, (*where, draw(st.sampled_from(["x", "uid", "details", "fileList"]))), placeholder)
    depth = draw(depths)
    text = json.dumps(body).replace(
        json.dumps(placeholder), nested(depth, kind=draw(st.sampled_from(["array", "obj"])))
    )
    return text.encode()


def text_of(value: Any) -> bytes:
    """Serialise with the standard library: it writes what orjson cannot (64-bit overflows, NaN, Infinity)."""
    return json.dumps(value, allow_nan=True).encode()
