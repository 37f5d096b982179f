"""`python -m processor replay`: its output contract, broken lines, skipped products, the gap timeout, determinism."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor import replay
from processor.core.fold import fold_all
from processor.core.reorder import ReorderPolicy
from processor.rawlog import RawBatch, RawEntry
from processor.simulation import SessionShape, deliver, generate_session
from schemas.callbacks import Envelope
from schemas.decode import decode
from schemas.derived import DERIVED_EVENT_ADAPTER, SequenceGapDetected
from schemas.state import SUMMARY_FIELDS, RecordingState

REPO = Path(__file__).parents[3]
REAL_ORDER = REPO / "tests" / "corpus" / "real_order_session.jsonl"
T0 = 1_700_000_000_000

#: The `--summary` contract: field -> the JSON types it may take.
CONTRACT_TYPES: dict[str, tuple[type, ...]] = {
    "sid": (str,),
    "cname": (str,),
    "status": (int,),
    "uid": (str,),
    "failovers": (int,),
    "discontinuities": (int,),
    "discontinuity_ms": (int,),
    "files": (list,),
    "duplicates": (int,),
    "missing_sequences": (list,),
    "last_sequence": (int, type(None)),
    "exit_status": (int, type(None)),
    "fatal_errors": (int,),
}


def body(
    event_type: int, sequence: int, details: dict[str, Any], *, sid: str = "sid-gap", at: int, **extra: Any
) -> bytes:
    """Return one NCS line (no newline) whose event time and arrival are both `at`."""
    envelope = {"noticeId": f"n-{sid}-{sequence}", "productId": 3, "eventType": event_type, "notifyMs": at, **extra}
    payload = {"cname": "room", "uid": "1001", "sid": sid, "sequence": sequence, "sendts": at, "details": details}
    return orjson.dumps({**envelope, "payload": payload})


def noisy_log(seed: int = 7) -> list[bytes]:
    """Two generated recordings, interleaved, shuffled within 20 s and with resends, one JSON per line."""
    rng = random.Random(seed)
    first = generate_session(rng, SessionShape(minutes=3, users=2, failovers=1, interruptions=1, warnings=1))
    second = generate_session(rng, SessionShape(minutes=2, mixed=True, fatal_error=True, skip_first_sequence=True))
    arrivals = deliver(rng, first + second, max_delay_ms=20_000, duplicate_rate=0.2)
    return [orjson.dumps(arrival) for arrival in arrivals]


def write_log(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = replay.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("replay") / "noisy.jsonl", noisy_log())


def test_summary_prints_one_object_per_sid_with_the_contract_fields_and_types(
    capsys: pytest.CaptureFixture[str], noisy: Path
) -> None:
    code, out, _ = run(capsys, noisy, "--summary")
    assert code == 0
    states = [json.loads(line) for line in out.splitlines()]
    sids = {orjson.loads(line)["payload"]["sid"] for line in noisy.read_bytes().splitlines()}
    assert [state["sid"] for state in states] == sorted(sids)
    assert tuple(CONTRACT_TYPES) == SUMMARY_FIELDS
    for state in states:
        for name, types in CONTRACT_TYPES.items():
            assert isinstance(state[name], types), (name, state[name])
            assert not isinstance(state[name], bool), name
        assert state["files"] == sorted(set(state["files"]))
        assert all(isinstance(name, str) for name in state["files"])
        assert all(isinstance(number, int) for number in state["missing_sequences"])
        assert state["duplicates"] > 0  # deliver() resent 20 % of the bodies
        assert state["status"] in (8, 20)


def test_the_summary_equals_fold_all_over_the_decoded_lines(capsys: pytest.CaptureFixture[str], noisy: Path) -> None:
    _, out, _ = run(capsys, noisy, "--summary")
    decoded = [decode(line) for line in noisy.read_bytes().splitlines()]
    expected = fold_all(callback for callback in decoded if isinstance(callback, Envelope)).snapshots()
    assert [RecordingState.model_validate_json(line) for line in out.splitlines()] == expected


def test_the_real_order_session_summary_is_the_exited_recording(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, err = run(capsys, REAL_ORDER, "--summary")
    (state,) = [json.loads(line) for line in out.splitlines()]
    picked = {
        name: state[name] for name in ("status", "exit_status", "duplicates", "missing_sequences", "last_sequence")
    }
    assert picked == {"status": 8, "exit_status": 0, "duplicates": 0, "missing_sequences": [0], "last_sequence": 19}
    assert len(state["files"]) == 2
    assert err == "replay: 19 lines, 19 callbacks, 0 broken, 0 duplicates, 1 recordings, skipped: none\n"


def test_derived_events_are_json_lines_that_the_derived_event_adapter_reads_back(
    capsys: pytest.CaptureFixture[str], noisy: Path
) -> None:
    code, out, _ = run(capsys, noisy)
    assert code == 0
    lines = out.splitlines()
    events = [DERIVED_EVENT_ADAPTER.validate_json(line) for line in lines]
    # Read back losslessly: every field printed is a field of the event's schema, and nothing is lost.
    assert [json.loads(event.model_dump_json()) for event in events] == [json.loads(line) for line in lines]
    kinds = {event.kind for event in events}
    assert {"status_changed", "failover", "slice_discontinuity", "files_uploaded", "session_ended"} <= kinds
    assert len({event.event_id for event in events}) == len(events)


def test_replaying_the_same_file_twice_gives_byte_identical_output(
    capsys: pytest.CaptureFixture[str], noisy: Path
) -> None:
    first, second = run(capsys, noisy), run(capsys, noisy)
    assert first == second
    assert run(capsys, noisy, "--summary") == run(capsys, noisy, "--summary")


def test_a_dash_reads_the_log_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, noisy: Path
) -> None:
    from_file = run(capsys, noisy, "--summary")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(noisy.read_bytes())))
    assert run(capsys, "-", "--summary") == from_file


GOOD = body(40, 0, {"status": 0}, sid="sid-ok", at=T0)
BROKEN = [
    (b"{not json", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object but list"),
    (b'"just a string"', "not a JSON object but str"),
    (orjson.dumps({"productId": 3, "eventType": 40, "payload": {"sequence": 1, "details": {}}}), "payload.sid"),
    (body(40, 1, {"status": 0}, sid="", at=T0 + 1), "payload.sid"),
    (
        orjson.dumps({"eventType": 40, "payload": {"sid": "sid-ok", "sequence": "abc", "details": {}}}),
        "payload.sequence",
    ),
    (body(33, 2, {"progress": "lots"}, sid="sid-ok", at=T0 + 2), "payload.details.progress"),
]


@pytest.fixture
def broken_log(tmp_path: Path) -> Path:
    # Line 1 is good, line 2 blank (ignored), lines 3.. broken, the last line good again.
    lines = [GOOD, b"   ", *(line for line, _ in BROKEN), body(41, 1, {"leaveCode": 2}, sid="sid-ok", at=T0 + 3)]
    return write_log(tmp_path / "broken.jsonl", lines)


def test_broken_lines_are_reported_with_their_number_and_reason_and_skipped(
    capsys: pytest.CaptureFixture[str], broken_log: Path
) -> None:
    code, out, err = run(capsys, broken_log, "--summary")
    assert code == 0
    reports = err.splitlines()[:-1]
    assert len(reports) == len(BROKEN)
    for number, (report, (_, reason)) in enumerate(zip(reports, BROKEN, strict=True), start=3):
        assert report.startswith(f"line {number}: ")
        assert reason in report
    assert err.splitlines()[-1].startswith(f"replay: {len(BROKEN) + 3} lines, 2 callbacks, {len(BROKEN)} broken,")
    (state,) = [json.loads(line) for line in out.splitlines()]
    assert (state["sid"], state["status"], state["last_sequence"]) == ("sid-ok", 6, 1)


def test_a_batch_of_records_folds_as_its_records_one_by_one_and_reports_a_broken_one_by_partition_and_offset(
    broken_log: Path,
) -> None:
    lines = broken_log.read_bytes().splitlines()
    by_entry, by_batch = (
        replay.Replayer(policy=ReorderPolicy(), on_derived=io.StringIO(), on_broken=io.StringIO()) for _ in "ab"
    )
    for offset, line in enumerate(lines, start=40):
        by_entry.feed(RawEntry(f"partition 2 offset {offset}", line))
    by_batch.feed_batch(RawBatch(2, list(range(40, 40 + len(lines))), lines))
    assert by_batch.report == by_entry.report
    assert by_batch._on_broken.getvalue() == by_entry._on_broken.getvalue()  # type: ignore[attr-defined]
    assert by_batch._on_broken.getvalue().startswith(f"partition 2 offset {40 + 2}: ")  # type: ignore[attr-defined]
    assert by_batch.fold.snapshots() == by_entry.fold.snapshots()


def test_strict_mode_exits_1_when_a_line_is_broken_and_0_otherwise(
    capsys: pytest.CaptureFixture[str], broken_log: Path
) -> None:
    assert run(capsys, broken_log, "--strict")[0] == 1
    assert run(capsys, REAL_ORDER, "--strict")[0] == 0


def test_other_products_and_console_checks_are_skipped_and_counted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = orjson.dumps({"noticeId": "x", "productId": 1, "eventType": 101, "payload": {"channelName": "c"}})
    other_as_text = orjson.dumps({"noticeId": "y", "productId": "7", "eventType": 1, "payload": {}})
    console = (REPO / "tests" / "corpus" / "wild" / "console_check.json").read_bytes().replace(b"\n", b"")
    log = write_log(tmp_path / "mixed.jsonl", [other, GOOD, other_as_text, console])
    code, out, err = run(capsys, log, "--summary")
    assert code == 0
    assert [json.loads(line)["sid"] for line in out.splitlines()] == ["sid-ok"]
    assert err.endswith(", 0 broken, 0 duplicates, 1 recordings, skipped: console_check 1, other_product 2\n")


def hole_filled_after_10_s() -> list[bytes]:
    """Sequence 1 arrives 10 s after 2 and 3, which wait for it; 3 arrives 6 s after 2."""
    progress = {"progress": 5_000}
    return [
        body(40, 0, {"status": 0}, at=T0),
        body(33, 2, progress, at=T0 + 1_000),
        body(33, 3, progress, at=T0 + 7_000),
        body(33, 1, progress, at=T0 + 11_000),
        body(41, 4, {"leaveCode": 2}, at=T0 + 12_000),
    ]


@pytest.mark.parametrize(
    ("argv", "gaps", "late"),
    [
        ((), [], []),
        (("--gap-timeout-ms", "5000"), [(1, 1, "timeout")], [1]),
        (("--gap-timeout-ms", "15000"), [], []),
    ],
    ids=["default 30 s: waits", "5 s: skips the hole, then 1 is late", "15 s: waits"],
)
def test_the_gap_timeout_decides_when_a_hole_is_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...], gaps: list[Any], late: list[int]
) -> None:
    log = write_log(tmp_path / "hole.jsonl", hole_filled_after_10_s())
    _, out, _ = run(capsys, log, *argv)
    events = [DERIVED_EVENT_ADAPTER.validate_json(line) for line in out.splitlines()]
    found = [(e.missing_from, e.missing_to, e.reason) for e in events if isinstance(e, SequenceGapDetected)]
    assert found == gaps
    assert sorted({event.sequence or 0 for event in events if event.late}) == late
    assert {event.sequence for event in events if event.kind == "upload_progress"} == {1, 2, 3}


def test_max_buffered_skips_a_hole_when_the_lane_is_full(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = write_log(tmp_path / "hole.jsonl", hole_filled_after_10_s())
    _, out, _ = run(capsys, log, "--max-buffered", "1")
    events = [DERIVED_EVENT_ADAPTER.validate_json(line) for line in out.splitlines()]
    assert [(e.missing_from, e.reason) for e in events if isinstance(e, SequenceGapDetected)] == [(1, "buffer_full")]


@pytest.fixture(scope="module")
def as_commands(noisy: Path) -> list[subprocess.CompletedProcess[str]]:
    """`python -m processor replay FILE --summary` run twice, under two hash seeds."""
    command = [sys.executable, "-m", "processor", "replay", str(noisy), "--summary"]
    return [
        subprocess.run(  # noqa: S603
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for seed in ("0", "1")
    ]


def test_python_m_processor_replay_runs_as_a_command(
    capsys: pytest.CaptureFixture[str], noisy: Path, as_commands: list[subprocess.CompletedProcess[str]]
) -> None:
    done = as_commands[0]
    assert done.returncode == 0, done.stderr
    _, out, err = run(capsys, noisy, "--summary")
    assert done.stderr == err
    assert [json.loads(line) for line in done.stdout.splitlines()] == [json.loads(line) for line in out.splitlines()]


def test_replay_prints_the_same_bytes_whatever_the_hash_seed(
    as_commands: list[subprocess.CompletedProcess[str]],
) -> None:
    # Every `python -m processor replay` draws its own hash seed: a set's order must never reach the output.
    first, second = as_commands
    assert first.stdout == second.stdout


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)


@st.composite
def near_lines(draw: st.DrawFn) -> bytes:
    """A plausible line with one payload or details field replaced by an arbitrary JSON value."""
    event_type = draw(st.sampled_from([3, 4, 11, 12, 31, 33, 40, 41, 42, 43, 45]))
    raw = orjson.loads(body(event_type, draw(st.integers(0, 5)), {}, sid=draw(st.sampled_from("ab")), at=T0))
    where = draw(st.sampled_from([raw, raw["payload"], raw["payload"]["details"]]))
    key = draw(st.sampled_from(["sequence", "uid", "details", "fileList", "newUid", "status", "startUtcMs", "state"]))
    where[key] = draw(JSON)
    return json.dumps(raw).encode()


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(near_lines() | st.binary(max_size=20), max_size=12))
def test_replay_accounts_for_every_line_and_never_raises(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    broken = io.StringIO()
    fold, report = replay.replay(lines, policy=ReorderPolicy(), on_derived=io.StringIO(), on_broken=broken)
    nonblank = sum(1 for line in lines if line.strip())
    assert report.broken + report.callbacks + fold.skipped.get("other_product", 0) == nonblank
    assert len(broken.getvalue().splitlines()) == report.broken
    assert all(isinstance(state, RecordingState) for state in fold.snapshots())
