"""The fold's shortcuts do what the general path does: `handle` (ReorderBuffer.take) vs `handle_released` (offer).

Also the shortcuts inside the state machine: models built without validation (`machine.trusted`) equal the
validated ones, and the decoded leave codes equal their decoding.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from processor.core import codes
from processor.core.fold import Step, Tracked, finish, handle, handle_released, snapshot, tick, track
from processor.core.machine import trusted
from processor.core.persist import dump, load
from processor.core.reorder import NEVER, ReorderPolicy
from processor.simulation import deliver
from schemas.compiled import AnyCallback, decode_fast
from schemas.decode import decode_object
from schemas.derived import SessionSummary, UploadedFileInfo
from schemas.state import ErrorRecord, FailoverRecord, RecordingState
from tests.unit.strategies import sessions

Body = dict[str, Any]

policies = st.builds(
    ReorderPolicy,
    gap_timeout_ms=st.sampled_from([0, 1, 500, 2_000, 30_000]),
    max_buffered=st.sampled_from([1, 2, 5, 256]),
)


def noisy(session: list[Body], data: st.DataObject) -> list[Body]:
    """Deliver a session shuffled, resent and lossy; some failover notices already carry their new uid."""
    bodies = [
        {**body, "payload": {**body["payload"], "uid": str(body["payload"]["details"]["newUid"])}}
        if body["eventType"] == 12 and data.draw(st.booleans())
        else body
        for body in session
    ]
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    return deliver(
        rng,
        bodies,
        max_delay_ms=data.draw(st.sampled_from([0, 1_000, 5_000, 120_000])),
        duplicate_rate=data.draw(st.sampled_from([0.0, 0.2, 0.5])),
        drop_rate=data.draw(st.sampled_from([0.0, 0.1])),
    )


def decoded(body: Body, compiled: bool) -> AnyCallback:
    callback = decode_fast(orjson.dumps(body)) if compiled else decode_object(body)
    assert hasattr(callback, "payload"), callback
    return callback  # type: ignore[return-value]


def assert_same(fast: Tracked, general: Tracked) -> None:
    """Both recordings hold the same facts and buffer, and the fast one's bookkeeping is right."""
    assert dump(fast) == dump(general)
    buffer = fast.buffer
    assert buffer.waiting == buffer.buffered() == general.buffer.buffered()
    deadline = buffer.gap_deadline_ms()
    # The expiry bound may be early, never late: no hole reaches its timeout before it.
    assert buffer.expires_at_ms <= (NEVER if deadline is None else deadline)


@settings(max_examples=150, deadline=None)
@given(session=sessions(), policy=policies, compiled=st.booleans(), data=st.data())
def test_the_shortcut_and_the_general_path_fold_every_delivery_alike(session, policy, compiled, data):
    deliveries = [decoded(body, compiled) for body in noisy(session, data)]
    fast, general = track(session[0]["payload"]["sid"], policy), track(session[0]["payload"]["sid"], policy)
    for callback in deliveries:
        now_ms = (callback.notifyMs or 0) + data.draw(st.sampled_from([0, 0, 0, -3_000, 40_000]))
        if data.draw(st.integers(0, 9)) == 0:  # time passes between deliveries
            assert tick(fast, now_ms=now_ms) == tick(general, now_ms=now_ms)
        if data.draw(st.integers(0, 19)) == 0:  # a worker restarts from the stored value
            fast = load(dump(fast), policy)
        fast_step, general_step = (
            handle(fast, callback, now_ms=now_ms),
            handle_released(general, callback, now_ms=now_ms),
        )
        assert fast_step == general_step
        assert_same(fast, general)
    assert finish(fast) == finish(general)
    assert_same(fast, general)


def test_a_step_that_released_more_than_its_own_delivery_adds_both():
    tracked = track("sid", ReorderPolicy(gap_timeout_ms=1_000))
    body = {"noticeId": "n", "productId": 3, "eventType": 33, "notifyMs": 1}
    payload = {"cname": "c", "uid": "1", "sid": "sid", "sendts": 1, "details": {"progress": 1}}
    held = handle(tracked, decode_object({**body, "payload": {**payload, "sequence": 2}}), now_ms=1)  # type: ignore[arg-type]
    assert held == Step()
    # The next delivery comes after the timeout: applied in order (0), then the hole (1) skipped, then 2.
    step = handle(tracked, decode_object({**body, "payload": {**payload, "sequence": 0}}), now_ms=5_000)  # type: ignore[arg-type]
    assert (step.applied, step.gaps, [type(event).kind_name() for event in step.derived]) == (
        2,
        1,
        ["upload_progress", "sequence_gap", "upload_progress"],
    )


def _same_model(built: BaseModel, validated: BaseModel) -> None:
    assert built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_dump(exclude_unset=True) == validated.model_dump(exclude_unset=True)


ints = st.integers(-(2**53) + 1, 2**53 - 1)
names = st.text(max_size=8)


@given(module=ints, code=ints, level=st.none() | ints, message=names, at_ms=ints)
def test_an_error_record_built_without_validation_is_the_validated_one(module, code, level, message, at_ms):
    fields = {"module": module, "code": code, "level": level, "message": message, "at_ms": at_ms}
    _same_model(trusted(ErrorRecord, dict(fields)), ErrorRecord(**fields))


@given(old_uid=names, new_uid=names, at_ms=ints)
def test_a_failover_record_built_without_validation_is_the_validated_one(old_uid, new_uid, at_ms):
    fields = {"old_uid": old_uid, "new_uid": new_uid, "at_ms": at_ms}
    _same_model(trusted(FailoverRecord, dict(fields)), FailoverRecord(**fields))


@given(
    file_name=names,
    track_type=st.none() | names,
    uid=st.none() | names,
    mixed_all_user=st.none() | st.booleans(),
    is_playable=st.none() | st.booleans(),
    slice_start_time=st.none() | ints,
)
def test_a_file_info_built_without_validation_is_the_validated_one(**fields):
    _same_model(trusted(UploadedFileInfo, dict(fields)), UploadedFileInfo(**fields))


@given(
    counts=st.lists(ints, min_size=8, max_size=8),
    exit_status=st.none() | ints,
    files=st.lists(names, max_size=3).map(lambda files: tuple(sorted(files))),
)
def test_a_session_summary_built_without_validation_is_the_validated_one(counts, exit_status, files):
    status, duration_ms, discontinuities, discontinuity_ms, failovers, gaps, duplicates, fatal_errors = counts
    fields = {
        "status": status,
        "exit_status": exit_status,
        "duration_ms": duration_ms,
        "files": files,
        "discontinuities": discontinuities,
        "discontinuity_ms": discontinuity_ms,
        "failovers": failovers,
        "gaps": gaps,
        "duplicates": duplicates,
        "fatal_errors": fatal_errors,
    }
    _same_model(trusted(SessionSummary, dict(fields)), SessionSummary(**fields))


@settings(max_examples=60, deadline=None)
@given(session=sessions(), compiled=st.booleans(), data=st.data())
def test_a_snapshot_built_without_validation_is_the_validated_one(session, compiled, data):
    tracked = track(session[0]["payload"]["sid"], ReorderPolicy(gap_timeout_ms=2_000))
    deliveries = [decoded(body, compiled) for body in noisy(session, data)]
    cut = data.draw(st.integers(0, len(deliveries)))  # midway too: something still held, no exit yet
    for callback in deliveries[:cut]:
        handle(tracked, callback, now_ms=callback.notifyMs or 0)
    built = snapshot(tracked)
    _same_model(built, RecordingState(**built.model_dump()))
    _same_model(built, RecordingState.model_validate_json(built.model_dump_json()))


@given(leave_code=st.integers(0, 64) | st.integers(0, 2**53))
def test_leave_codes_decoded_once_say_what_decoding_them_says(leave_code):
    assert codes.leave_reasons(leave_code) == codes._decode_leave_code(leave_code)
