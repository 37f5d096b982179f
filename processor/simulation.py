"""Realistic Cloud Recording sessions and noisy deliveries of them, for tests, benchmarks and the simulator.

A session is the list of NCS bodies one recording sends, in the order the service numbered them. A delivery
schedule then shuffles, duplicates (new `notifyMs`, so new bytes, as NCS retries do) and drops them.
Everything is drawn from a `random.Random`, so a seed reproduces a session exactly.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]

#: Minutes between upload progress reports (event 33 is sent once a minute).
MINUTE_MS = 60_000
#: A failed-over recorder rejoins within about 90 s (spec README, "Failover").
FAILOVER_REJOIN_MS = 90_000


@dataclass(frozen=True, slots=True)
class SessionShape:
    """What kind of recording to generate."""

    minutes: int = 5
    users: int = 2
    mixed: bool = False
    failovers: int = 0
    #: Under a new uid, start `sequence` again at 0 (True) or continue the counter (False): undocumented.
    restart_sequence_on_failover: bool = False
    #: Slice discontinuities without a failover.
    interruptions: int = 0
    fatal_error: bool = False
    warnings: int = 0
    vod: bool = False
    unknown_events: int = 0
    #: Leave `sequence` 0 unused, as when its event type is not subscribed (spec README: "A real 40 carried 1").
    skip_first_sequence: bool = False


@dataclass(slots=True)
class _Writer:
    """Numbers and stamps the bodies of one session."""

    rng: random.Random
    sid: str
    cname: str
    uid: str
    now_ms: int
    sequence: int = 0
    bodies: list[Body] = field(default_factory=list)

    def emit(self, event_type: int, service_type: int, details: Body, *, after_ms: int = 0) -> None:
        self.now_ms += after_ms
        self.bodies.append(
            {
                "noticeId": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "productId": 3,
                "eventType": event_type,
                "notifyMs": self.now_ms,
                "sid": self.sid,
                "payload": {
                    "cname": self.cname,
                    "uid": self.uid,
                    "sid": self.sid,
                    "sequence": self.sequence,
                    "sendts": self.now_ms,
                    "serviceType": service_type,
                    "details": details,
                },
            }
        )
        self.sequence += 1


def generate_session(rng: random.Random, shape: SessionShape, *, start_ms: int = 1_700_000_000_000) -> list[Body]:
    """Return the bodies of one recording, in the order the service numbered them."""
    sid = f"{rng.getrandbits(128):032x}"
    out = _Writer(rng, sid, f"room-{rng.randrange(10_000)}", str(rng.randrange(1, 2**31)), start_ms)
    users = ["0"] if shape.mixed else [str(rng.randrange(1, 2**31)) for _ in range(shape.users)]
    if shape.skip_first_sequence:
        out.sequence = 1
    _start_recorder(out, users, shape, first=True)
    failover_minutes = set(rng.sample(range(1, shape.minutes + 1), k=min(shape.failovers, shape.minutes)))
    interruption_minutes = set(rng.sample(range(1, shape.minutes + 1), k=min(shape.interruptions, shape.minutes)))
    for minute in range(1, shape.minutes + 1):
        _minute(out, users, rng, minute, shape)
        if minute in interruption_minutes:
            _slice_restart(out, users, shape, hole_ms=rng.randrange(2_000, 20_000))
        if minute in failover_minutes:
            _failover(out, users, rng, shape)
    _extras(out, rng, shape)
    _stop(out, users, shape)
    return out.bodies


def _track_type(shape: SessionShape) -> str:
    return "audio_and_video" if shape.mixed else "audio"


def _start_recorder(out: _Writer, users: list[str], shape: SessionShape, *, first: bool) -> None:
    if first:
        out.emit(30, 2, {"msgName": "uploader_started", "status": 0}, after_ms=400)
    out.emit(40, 1, {"msgName": "recorder_started", "status": 0}, after_ms=300)
    for user in users:
        for event_type, name in ((43, "audio"), (44, "video")):
            details = {"msgName": f"recorder_{name}_stream_state_changed", "streamUid": user, "state": 0}
            out.emit(event_type, 1, {**details, "UtcMs": out.now_ms + 50}, after_ms=50)
    if first:
        _slice_start(out, users, shape, discontinue_ms=None)
        out.emit(
            4, 0, {"msgName": "cloud_recording_file_infos", "fileList": f"{out.sid}_{out.cname}.m3u8"}, after_ms=900
        )


def _slice_start(out: _Writer, users: list[str], shape: SessionShape, *, discontinue_ms: int | None) -> None:
    for user in users:
        start = out.now_ms + 20
        details = {
            "msgName": "recorder_slice_start",
            "startUtcMs": start,
            "discontinueUtcMs": start if discontinue_ms is None else discontinue_ms,
            "mixedAllUser": shape.mixed,
            "streamUid": user,
            "trackType": _track_type(shape),
        }
        out.emit(42, 1, details, after_ms=20)


def _slice_restart(out: _Writer, users: list[str], shape: SessionShape, *, hole_ms: int) -> None:
    last_good = out.now_ms
    out.now_ms += hole_ms
    _slice_start(out, users, shape, discontinue_ms=last_good)


def _minute(out: _Writer, users: list[str], rng: random.Random, minute: int, shape: SessionShape) -> None:
    start = out.now_ms
    if rng.random() < 0.5:
        user = rng.choice(users)
        event_type, name = rng.choice(((43, "audio"), (44, "video")))
        at = start + rng.randrange(1_000, MINUTE_MS // 2)
        details = {"msgName": f"recorder_{name}_stream_state_changed", "streamUid": user, "state": 1, "UtcMs": at}
        out.emit(event_type, 1, details, after_ms=at - out.now_ms)
        back = {**details, "state": 0, "UtcMs": at + 5_000}
        out.emit(event_type, 1, back, after_ms=5_000)
    progress = min(10_000, 9_000 + rng.randrange(1_000)) if minute > 1 else rng.randrange(5_000, 9_000)
    out.emit(33, 2, {"msgName": "uploading_progress", "progress": progress}, after_ms=start + MINUTE_MS - out.now_ms)
    del shape


def _failover(out: _Writer, users: list[str], rng: random.Random, shape: SessionShape) -> None:
    new_uid = rng.randrange(1, 2**31)
    out.emit(12, 0, {"msgName": "session_failover", "newUid": new_uid}, after_ms=1_000)
    last_good = out.now_ms - 1_000
    out.uid = str(new_uid)
    if shape.restart_sequence_on_failover:
        out.sequence = 0
    out.now_ms += rng.randrange(10_000, FAILOVER_REJOIN_MS)
    _start_recorder(out, users, shape, first=False)
    _slice_start(out, users, shape, discontinue_ms=last_good)


def _extras(out: _Writer, rng: random.Random, shape: SessionShape) -> None:
    for _ in range(shape.warnings):
        out.emit(
            2, 0, {"msgName": "cloud_recording_warning", "module": 1, "warnCode": rng.choice((31, 32))}, after_ms=500
        )
    for _ in range(shape.unknown_events):
        snapshot = {"msgName": "recorder_snapshot_file", "fileName": f"snap-{rng.randrange(1000)}.jpg"}
        out.emit(45, 1, snapshot, after_ms=500)
    if shape.vod:
        out.emit(
            60, 4, {"msgName": "vod_started", "aliVodInfo": {"videoId": f"vid{rng.randrange(10**6)}"}}, after_ms=200
        )
    if shape.fatal_error:
        error = {"msgName": "cloud_recording_error", "module": 1, "errorLevel": 5, "errorCode": 47, "stat": 1}
        out.emit(1, 0, {**error, "errorMsg": "upload failed"}, after_ms=300)


def _stop(out: _Writer, users: list[str], shape: SessionShape) -> None:
    out.emit(41, 1, {"msgName": "recorder_leave", "leaveCode": 2 | 4}, after_ms=2_000)
    out.emit(33, 2, {"msgName": "uploading_progress", "progress": 10_000}, after_ms=1_000)
    if shape.fatal_error:
        out.emit(11, 0, {"msgName": "session_exit", "exitStatus": 1}, after_ms=500)
        return
    files = [
        {
            "fileName": f"{out.sid}_{out.cname}{'' if shape.mixed else '__uid_s_' + user}.m3u8",
            "trackType": _track_type(shape),
            "uid": user,
            "mixedAllUser": shape.mixed,
            "isPlayable": True,
            "sliceStartTime": out.now_ms - MINUTE_MS,
        }
        for user in users
    ]
    out.emit(31, 2, {"msgName": "uploaded", "status": 0, "fileList": files}, after_ms=1_500)
    if shape.vod:
        out.emit(61, 4, {"msgName": "vod_triggered"}, after_ms=200)
    out.emit(11, 0, {"msgName": "session_exit", "exitStatus": 0}, after_ms=500)


def random_shape(rng: random.Random) -> SessionShape:
    """Draw a plausible mix: most recordings are plain, some fail over, some break."""
    return SessionShape(
        minutes=rng.randrange(1, 8),
        users=rng.randrange(1, 4),
        mixed=rng.random() < 0.3,
        failovers=rng.choice((0, 0, 0, 1, 2, 3)),
        restart_sequence_on_failover=rng.random() < 0.5,
        interruptions=rng.choice((0, 0, 1, 2)),
        fatal_error=rng.random() < 0.1,
        warnings=rng.choice((0, 0, 1)),
        vod=rng.random() < 0.1,
        unknown_events=rng.choice((0, 0, 1)),
        skip_first_sequence=rng.random() < 0.2,
    )


def deliver(
    rng: random.Random,
    bodies: list[Body],
    *,
    max_delay_ms: int = 0,
    duplicate_rate: float = 0.0,
    drop_rate: float = 0.0,
) -> list[Body]:
    """Return the deliveries NCS would make, in arrival order, each stamped with its arrival as `notifyMs`.

    Each body arrives after a random delay of up to `max_delay_ms` (so arrival order shuffles), is resent
    with probability `duplicate_rate` (a new `notifyMs`: new bytes, same event), or is lost with `drop_rate`.
    """
    arrivals: list[tuple[int, int, Body]] = []
    for index, body in enumerate(bodies):
        if rng.random() < drop_rate:
            continue
        copies = 2 if rng.random() < duplicate_rate else 1
        for _ in range(copies):
            arrival = body["notifyMs"] + rng.randrange(max_delay_ms + 1)
            arrivals.append((arrival, index, {**body, "notifyMs": arrival}))
    arrivals.sort(key=lambda item: (item[0], item[1]))
    return [body for _, _, body in arrivals]
