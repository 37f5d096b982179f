"""The agent's logic without Faust: what is stored and sent for each raw record and each tick."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.fold import RetentionPolicy, delivery_clock_ms, fold_all
from processor.core.reorder import ReorderPolicy
from processor.pipeline import (
    Absent,
    Applied,
    Batch,
    DeadLettered,
    Forgotten,
    InFlight,
    Outgoing,
    Pipeline,
    Result,
    Skipped,
    Ticked,
    trim,
)
from processor.simulation import deliver, generate_session
from schemas.decode import decode
from schemas.state import RecordingState
from tests.unit.builders import SID, T0, body
from tests.unit.strategies import shapes

KEY = SID.encode()
PIPELINE = Pipeline(ReorderPolicy(gap_timeout_ms=30_000), RetentionPolicy(inactivity_timeout_ms=600_000))


def raw(event_type: int, sequence: int, details: dict[str, object] | None = None, **kwargs: object) -> bytes:
    return orjson.dumps(body(event_type, sequence, details, **kwargs))  # type: ignore[arg-type]


def roles(outgoing: list[Outgoing]) -> list[str]:
    return [record.role for record in outgoing]


def applied(result: Result) -> Applied:
    assert isinstance(result, Applied), result
    return result


def test_a_first_callback_stores_the_recording_and_sends_its_events_and_snapshot():
    result = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0)
    applied(result.result)
    assert result.stored is not None
    assert roles(result.outgoing) == ["events", "state"]
    assert orjson.loads(result.outgoing[0].value or b"")["kind"] == "status_changed"
    state = RecordingState.model_validate_json(result.outgoing[1].value or b"")
    assert (state.sid, state.status) == (SID, 4)
    assert applied(result.result).deadline_ms == T0 + 600_000


def test_a_resent_callback_sends_no_event_only_the_snapshot_with_its_count():
    first = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0)
    again = PIPELINE.on_callback(first.stored, KEY, raw(40, 0, notify_ms=T0 + 9), [], now_ms=T0 + 9)
    assert applied(again.result).step.duplicate
    assert roles(again.outgoing) == ["state"]
    assert RecordingState.model_validate_json(again.outgoing[0].value or b"").duplicates == 1


def test_a_broken_body_goes_to_the_dead_letter_topic_with_its_bytes_headers_and_reason():
    headers = [("provider", b"agora")]
    result = PIPELINE.on_callback(b"stored", KEY, b"{not json", headers, now_ms=T0)
    (dead,) = result.outgoing
    assert (dead.role, dead.key, dead.value) == ("dlq", KEY, b"{not json")
    assert dead.headers[0] == ("provider", b"agora")
    assert dict(dead.headers)["dlq-kind"] == b"not_json"
    assert dict(dead.headers)["dlq-reason"].startswith(b"not JSON")
    assert result.stored == b"stored"
    assert result.result == DeadLettered("not_json", (dead,))


def test_another_products_notice_is_a_dead_letter_too():
    notice = orjson.dumps({"productId": 1, "eventType": 101, "payload": {"channelName": "c"}})
    result = PIPELINE.on_callback(None, KEY, notice, [], now_ms=T0)
    assert roles(result.outgoing) == ["dlq"]
    assert isinstance(result.result, DeadLettered)
    assert result.result.kind == "other_product"


def test_the_consoles_address_check_changes_nothing_and_sends_nothing():
    check = body(40, 0)
    check["payload"]["cname"] = "test_webhook"
    result = PIPELINE.on_callback(None, KEY, orjson.dumps(check), [], now_ms=T0)
    assert (result.stored, result.outgoing) == (None, [])
    assert isinstance(result.result, Skipped)
    assert result.result.reason == "console_check"


def test_fatal_errors_and_failovers_are_also_alerts_but_minor_errors_are_not():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    minor = {"module": 1, "errorLevel": 2, "errorCode": 47, "stat": 0, "errorMsg": ""}
    result = PIPELINE.on_callback(stored, KEY, raw(1, 1, minor), [], now_ms=T0)
    assert "alerts" not in roles(result.outgoing)
    result = PIPELINE.on_callback(result.stored, KEY, raw(1, 2, {**minor, "errorLevel": 5}), [], now_ms=T0)
    assert roles(result.outgoing) == ["events", "alerts", "state"]
    result = PIPELINE.on_callback(result.stored, KEY, raw(12, 3, {"newUid": 7}), [], now_ms=T0)
    assert roles(result.outgoing) == ["events", "alerts", "state"]


def test_a_tick_after_the_gap_timeout_skips_the_hole_and_alerts():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    held = PIPELINE.on_callback(stored, KEY, raw(33, 2, {"progress": 1}), [], now_ms=T0)
    assert applied(held.result).deadline_ms == T0 + 30_000
    assert applied(held.result).held
    early = PIPELINE.on_tick(held.stored, KEY, now_ms=T0 + 29_999)
    assert roles(early.outgoing) == ["state"]
    result = PIPELINE.on_tick(held.stored, KEY, now_ms=T0 + 30_000)
    assert roles(result.outgoing) == ["events", "alerts", "events", "state"]
    assert orjson.loads(result.outgoing[0].value or b"")["kind"] == "sequence_gap"


def test_a_tick_past_the_inactivity_timeout_expires_the_recording_and_tombstones_its_state():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    result = PIPELINE.on_tick(stored, KEY, now_ms=T0 + 600_000)
    assert result.stored is None
    assert isinstance(result.result, Forgotten)
    assert roles(result.outgoing) == ["events", "alerts", "state"]
    assert orjson.loads(result.outgoing[0].value or b"")["kind"] == "session_expired"
    assert result.outgoing[-1] == Outgoing("state", KEY, None)


def test_a_tick_for_a_forgotten_recording_does_nothing():
    result = PIPELINE.on_tick(None, KEY, now_ms=T0)
    assert (result.result, result.stored, result.outgoing) == (Absent(), None, [])


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_the_stored_path_ends_in_the_state_a_replay_of_the_same_log_computes(shape, seed):
    rng = random.Random(seed)
    noisy = deliver(rng, generate_session(rng, shape), max_delay_ms=3_000, duplicate_rate=0.2)
    lines = [orjson.dumps(delivery) for delivery in noisy]
    stored: bytes | None = None
    clock = 0
    for line in lines:  # every record loads what the table holds and stores it back, as the agent does
        clock = max(clock, delivery_clock_ms(decode(line)))  # type: ignore[arg-type]
        stored = PIPELINE.on_callback(stored, KEY, line, [], now_ms=clock).stored
    # Replay flushes held callbacks at the end of input; live, a tick past the gap timeout does the same.
    final = PIPELINE.on_tick(stored, KEY, now_ms=clock + PIPELINE.reorder.gap_timeout_ms)
    live = RecordingState.model_validate_json(final.outgoing[-1].value or b"")
    (replayed,) = fold_all([decode(line) for line in lines], PIPELINE.reorder).snapshots()  # type: ignore[misc]
    assert live == replayed


def test_a_record_re_read_after_a_restart_is_recognised_by_its_position_not_counted_as_a_duplicate():
    first = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0, position=(2, 10))
    second = PIPELINE.on_callback(first.stored, KEY, raw(33, 1, {"progress": 1}), [], now_ms=T0, position=(2, 11))
    again = PIPELINE.on_callback(second.stored, KEY, raw(40, 0), [], now_ms=T0, position=(2, 10))
    assert isinstance(again.result, Skipped)
    assert (again.result.reason, again.stored, again.outgoing) == ("reread", second.stored, [])
    resent = PIPELINE.on_callback(second.stored, KEY, raw(40, 0, notify_ms=T0 + 5), [], now_ms=T0, position=(2, 12))
    assert applied(resent.result).step.duplicate  # a real NCS resend has a new position: a duplicate, counted as such
    moved = PIPELINE.on_callback(second.stored, KEY, raw(33, 2, {"progress": 2}), [], now_ms=T0, position=(0, 3))
    assert isinstance(moved.result, Applied)  # another partition (a repartitioned topic): offsets do not compare


def test_a_batch_writes_each_changed_recording_once_with_its_latest_snapshot_and_keeps_it_live():
    table: dict[bytes, bytes] = {}
    cache: dict = {}
    batch = Batch(PIPELINE, cache, table.get)
    first = applied(batch.callback(KEY, raw(40, 0), [], now_ms=T0, position=(0, 0)))
    second = applied(batch.callback(KEY, raw(33, 1, {"progress": 1}), [], now_ms=T0, position=(0, 1)))
    assert roles(first.outgoing) == ["events"]  # no snapshot per record: one per sid at the end of the batch
    assert second.tracked is first.tracked  # the second record found the live recording the first one changed
    (write,) = batch.writes()
    assert (write.key, write.state.role, write.state.key) == (KEY, "state", KEY)
    assert RecordingState.model_validate_json(write.state.value or b"").last_sequence == 1
    assert (
        write.stored
        == PIPELINE.on_callback(
            PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0, position=(0, 0)).stored,
            KEY,
            raw(33, 1, {"progress": 1}),
            [],
            now_ms=T0,
            position=(0, 1),
        ).stored
    )
    assert cache == {KEY: second.tracked}


def test_a_batch_reads_what_the_cache_lacks_from_the_table_and_sees_its_own_forgetting():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    assert stored is not None
    cache: dict = {}
    batch = Batch(PIPELINE, cache, {KEY: stored}.get)
    expired = batch.tick(KEY, now_ms=T0 + 600_000)  # read from the table, then forgotten
    assert isinstance(expired, Forgotten)
    assert batch.tick(KEY, now_ms=T0 + 600_001) == Absent()  # the batch knows it is gone, whatever the table says
    (write,) = batch.writes()
    assert (write.stored, write.state) == (None, Outgoing("state", KEY, None))
    assert cache == {}


def test_dead_letters_and_re_read_records_change_nothing_in_a_batch():
    cache: dict = {}
    batch = Batch(PIPELINE, cache, {}.get)
    batch.callback(KEY, raw(40, 0), [], now_ms=T0, position=(1, 5))
    match batch.callback(KEY, b"{not json", [], now_ms=T0):
        case DeadLettered(kind=kind):
            assert kind == "not_json"
        case other:
            raise AssertionError(other)
    match batch.callback(KEY, raw(40, 0), [], now_ms=T0, position=(1, 5)):
        case Skipped(reason=reason):
            assert reason == "reread"
        case other:
            raise AssertionError(other)
    assert len(batch.writes()) == 1


def test_trim_drops_the_least_recently_changed_recordings_beyond_the_limit():
    cache: dict = {}
    for index in range(5):
        batch = Batch(PIPELINE, cache, {}.get)
        batch.callback(f"s{index}".encode(), raw(40, 0), [], now_ms=T0)
        batch.writes()
    batch = Batch(PIPELINE, cache, {}.get)
    batch.callback(b"s0", raw(33, 1, {"progress": 1}), [], now_ms=T0)  # changed again: the most recent
    batch.writes()
    trim(cache, 3)
    assert list(cache) == [b"s3", b"s4", b"s0"]


def test_trim_drops_the_recordings_without_a_delivery_since_the_idle_cutoff_and_keeps_the_recent_ones():
    cache: dict = {}
    for index, delivered_ms in enumerate((T0, T0 + 1_000, T0 + 5_000)):
        batch = Batch(PIPELINE, cache, {}.get)
        batch.callback(f"s{index}".encode(), raw(40, 0), [], now_ms=delivered_ms)
        batch.writes()
    trim(cache, 10, idle_since_ms=T0 + 1_000)
    assert list(cache) == [b"s1", b"s2"]


def test_trim_keeps_the_recordings_newer_than_the_table_whatever_their_age_or_the_limit():
    cache: dict = {}
    for index in range(3):
        batch = Batch(PIPELINE, cache, {}.get)
        batch.callback(f"s{index}".encode(), raw(40, 0), [], now_ms=T0)
        batch.writes()
    trim(cache, 1, idle_since_ms=T0 + 1, keep={b"s0"})
    assert list(cache) == [b"s0"]


def test_in_flight_answers_a_keys_newest_snapshot_until_the_table_holds_the_batch_that_wrote_it():
    cache: dict = {}
    in_flight = InFlight()
    first = Batch(PIPELINE, cache, {}.get)
    first.callback(KEY, raw(40, 0), [], now_ms=T0)
    (older,) = first.writes()
    second = Batch(PIPELINE, cache, {}.get)
    second.callback(KEY, raw(33, 1, {"progress": 1}), [], now_ms=T0)
    (newer,) = second.writes()
    in_flight.sent([older])
    in_flight.sent([newer])
    in_flight.stored(older)  # the first batch ended: the table still lacks the second one's recording
    assert KEY in in_flight
    assert in_flight.get(KEY) is newer
    assert RecordingState.model_validate_json(newer.state.value or b"").last_sequence == 1
    in_flight.stored(newer)
    assert (KEY in in_flight, in_flight.get(KEY), len(in_flight)) == (False, None, 0)


def test_in_flight_answers_a_tombstone_for_a_recording_forgotten_by_a_batch_not_yet_in_the_table():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    assert stored is not None
    batch = Batch(PIPELINE, {}, {KEY: stored}.get)
    batch.tick(KEY, now_ms=T0 + 600_000)
    in_flight = InFlight()
    in_flight.sent(batch.writes())
    write = in_flight.get(KEY)
    assert write is not None
    assert write.state.value is None  # the query API answers 404 from now on


def test_a_tick_that_keeps_the_recording_says_when_to_tick_next_and_what_it_holds():
    stored = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0).stored
    held = PIPELINE.on_callback(stored, KEY, raw(33, 2, {"progress": 1}), [], now_ms=T0).stored
    ticked = PIPELINE.on_tick(held, KEY, now_ms=T0 + 1_000).result
    assert isinstance(ticked, Ticked)
    assert (ticked.key, ticked.buffered, ticked.status, ticked.last_delivery_ms) == (KEY, 1, 4, T0)
    assert ticked.deadline_ms == T0 + 30_000


def test_what_the_table_says_of_a_recording_is_what_its_last_result_said():
    first = PIPELINE.on_callback(None, KEY, raw(40, 0), [], now_ms=T0)
    held = PIPELINE.on_callback(first.stored, KEY, raw(33, 2, {"progress": 1}), [], now_ms=T0 + 10)  # 1 is missing
    result = applied(held.result)
    assert result.buffered == 1
    assert held.stored is not None
    assert PIPELINE.known(held.stored) == (result.deadline_ms, 1, result.status, result.last_delivery_ms)
