"""The reorder buffer: order, duplicates, holes, the gap timeout, the size bound and failover lanes."""

from __future__ import annotations

from processor.core.reorder import Delivered, Gap, ReorderBuffer, ReorderPolicy, SequenceSet
from tests.unit.builders import T0, callback, progress

POLICY = ReorderPolicy(gap_timeout_ms=30_000, max_buffered=4)


def sequences(released: list[Delivered | Gap] | None) -> list[object]:
    """Render released items compactly: numbers for callbacks, ('gap', from, to) for holes, 'late:n' for late ones."""
    assert released is not None
    rendered: list[object] = []
    for item in released:
        if isinstance(item, Gap):
            rendered.append(("gap", item.missing_from, item.missing_to))
        else:
            number = item.callback.payload.sequence
            rendered.append(f"late:{number}" if item.late else number)
    return rendered


def test_releases_in_sequence_order_whatever_the_arrival_order():
    buffer = ReorderBuffer(POLICY)
    assert sequences(buffer.offer(progress(2), T0)) == []
    assert sequences(buffer.offer(progress(0), T0)) == [0]
    assert sequences(buffer.offer(progress(1), T0)) == [1, 2]
    assert buffer.buffered() == 0


def test_drops_a_second_delivery_of_the_same_uid_and_sequence():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    resent = progress(0, notify_ms=T0 + 5_000)  # an NCS retry: new notifyMs, new bytes, same event
    assert buffer.offer(resent, T0 + 5_000) is None


def test_drops_a_duplicate_that_is_still_waiting_in_the_buffer():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(progress(2), T0)
    assert buffer.offer(progress(2), T0) is None
    assert buffer.buffered() == 1


def test_waits_for_a_hole_until_the_gap_timeout_then_skips_it():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(progress(2), T0 + 1_000)
    buffer.offer(progress(3), T0 + 2_000)
    assert sequences(buffer.expire(T0 + 30_999)) == []
    assert sequences(buffer.expire(T0 + 31_000)) == [("gap", 1, 1), 2, 3]


def test_a_callback_whose_hole_was_skipped_is_released_late():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(progress(2), T0)
    buffer.expire(T0 + 30_000)
    assert sequences(buffer.offer(progress(1), T0 + 40_000)) == ["late:1"]
    assert buffer.offer(progress(1), T0 + 41_000) is None  # and only once


def test_skips_the_hole_at_once_when_the_lane_holds_more_than_its_bound():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    for number in (2, 3, 4, 5):
        assert sequences(buffer.offer(progress(number), T0)) == []
    assert sequences(buffer.offer(progress(6), T0)) == [("gap", 1, 1), 2, 3, 4, 5, 6]


def test_the_wait_counts_from_when_the_oldest_held_callback_arrived():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(progress(3), T0)  # holes at 1 and 2 since T0
    buffer.offer(progress(1), T0 + 29_000)
    assert sequences(buffer.expire(T0 + 30_000)) == [("gap", 2, 2), 3]


def test_the_clock_never_steps_back_when_notify_ms_does():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0 + 60_000)
    buffer.offer(progress(2), T0)  # an old timestamp: the buffer's clock stays at T0 + 60 s
    assert buffer.clock_ms == T0 + 60_000
    assert sequences(buffer.expire(T0 + 90_000)) == [("gap", 1, 1), 2]


def test_a_lane_that_never_saw_sequence_zero_waits_for_it_then_starts_where_it_can():
    buffer = ReorderBuffer(POLICY)
    assert sequences(buffer.offer(callback(40, 1), T0)) == []  # "a real 40 carried sequence 1"
    assert sequences(buffer.expire(T0 + 30_000)) == [("gap", 0, 0), 1]


def test_drain_releases_everything_in_order_and_reports_each_hole():
    buffer = ReorderBuffer(POLICY)
    for number in (4, 1, 2):
        buffer.offer(progress(number), T0)
    assert sequences(buffer.drain()) == [("gap", 0, 0), 1, 2, ("gap", 3, 3), 4]
    assert buffer.buffered() == 0


def failover(sequence: int, new_uid: int, *, uid: str = "1001") -> object:
    return callback(12, sequence, {"newUid": new_uid}, uid=uid)


def test_new_uid_restarting_at_zero_is_released_without_waiting():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    assert sequences(buffer.offer(failover(1, 2002), T0)) == [1]
    assert sequences(buffer.offer(progress(0, uid="2002"), T0)) == [0]
    assert sequences(buffer.offer(progress(1, uid="2002"), T0)) == [1]


def test_new_uid_continuing_the_counter_is_released_without_waiting():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(failover(1, 2002), T0)
    assert sequences(buffer.offer(progress(2, uid="2002"), T0)) == [2]
    assert sequences(buffer.offer(progress(3, uid="2002"), T0)) == [3]


def test_new_uid_events_arriving_before_the_failover_notice_wait_for_it():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    assert sequences(buffer.offer(progress(3, uid="2002"), T0)) == []
    assert sequences(buffer.offer(progress(2, uid="2002"), T0)) == []
    # The notice (sequence 1, old uid) tells where the new uid's counter continues: 2.
    assert sequences(buffer.offer(failover(1, 2002), T0)) == [1, 2, 3]


def test_same_sequence_under_two_uids_is_two_deliveries_not_a_duplicate():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    buffer.offer(failover(1, 2002), T0)
    assert sequences(buffer.offer(progress(0, uid="2002"), T0)) == [0]
    assert sequences(buffer.offer(progress(1, uid="2002"), T0)) == [1]


def test_a_notice_that_already_carries_the_new_uid_opens_the_lane_at_its_own_number():
    buffer = ReorderBuffer(POLICY)
    buffer.offer(progress(0), T0)
    assert sequences(buffer.offer(failover(5, 2002, uid="2002"), T0)) == [5]
    assert sequences(buffer.offer(progress(6, uid="2002"), T0)) == [6]


def test_sequence_set_keeps_runs_as_ranges_and_merges_holes_when_filled():
    numbers = SequenceSet()
    for number in (0, 1, 2, 5, 6, 4):
        assert numbers.add(number)
    assert numbers.ranges == [[0, 2], [4, 6]]
    assert not numbers.add(5)
    assert numbers.add(3)
    assert numbers.ranges == [[0, 6]]
    assert 3 in numbers
    assert 7 not in numbers
    assert list(numbers) == list(range(7))
    assert numbers.highest() == 6


def test_a_held_number_joins_the_released_numbers_in_the_run_that_releases_it():
    buffer = ReorderBuffer(POLICY)
    for number in (0, 1, 3, 4):
        buffer.offer(progress(number), T0)
    (lane,) = buffer.lanes.values()
    assert (lane.passed.ranges, sorted(lane.pending)) == ([[0, 1]], [3, 4])
    assert lane.received().ranges == [[0, 1], [3, 4]]  # every number received, as a snapshot and the store see it
    assert buffer.offer(progress(3), T0) is None  # held: a duplicate all the same
    assert sequences(buffer.offer(progress(2), T0)) == [2, 3, 4]
    assert (lane.passed.ranges, lane.pending) == ([[0, 4]], {})
