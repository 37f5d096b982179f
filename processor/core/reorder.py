"""Reorder buffer of one recording: releases callbacks in `sequence` order, drops duplicates, gives up on holes.

One lane per recorder uid. Whether a failover restarts `sequence` under the new uid is documented nowhere
(spec README, "Failover"), so the identity of a delivery is (uid, sequence), never sequence alone, and a lane
does not assume where it starts: 0 always may, and so may the number right after a failover notice that names
its uid (the counter continued). A lane that holds callbacks behind a missing number waits at most the gap
timeout, or until it holds `max_buffered` callbacks, then skips the hole and reports it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from schemas import callbacks, compiled
from schemas.compiled import AnyCallback

GapReason = Literal["timeout", "buffer_full", "end_of_input"]

DEFAULT_GAP_TIMEOUT_MS = 30_000
DEFAULT_MAX_BUFFERED = 256
#: `ReorderBuffer.expires_at_ms` while nothing is held: later than any clock.
NEVER: Final = 2**63


@dataclass(frozen=True, slots=True)
class ReorderPolicy:
    """How long and how much a lane may wait for a missing sequence number."""

    gap_timeout_ms: int = DEFAULT_GAP_TIMEOUT_MS
    #: Per recorder uid: a lane holding more skips its hole at once.
    max_buffered: int = DEFAULT_MAX_BUFFERED


class Delivered(msgspec.Struct, gc=False):  # one per callback: builds in a quarter of a dataclass's time
    """A callback released to the state machine; `late` if its hole had already been skipped."""

    callback: AnyCallback
    late: bool = False


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers of one uid given up on, released just before `next_callback`."""

    uid: str
    missing_from: int
    missing_to: int
    reason: GapReason
    next_callback: AnyCallback


Released = list[Delivered | Gap]


#: What `ReorderBuffer.take` did with a delivery. Plain ints, not an Enum: an Enum member costs a class
#: attribute lookup at every use, and `take` and the fold ask several times a delivery.
Taken = Literal[0, 1, 2, 3, 4]
#: Nothing: not one of the common cases, left to `offer` (the buffer is as it was).
LEFT_FOR_OFFER: Final = 0
#: Next in line with nothing held before it: to apply now.
NEXT_IN_LINE: Final = 1
#: Its hole was skipped before it came: to apply now, late.
LATE: Final = 2
#: Held behind a missing number: nothing to apply.
HELD: Final = 3
#: Seen before: dropped.
DUPLICATE: Final = 4


def _low(numbers: list[int]) -> int:
    return numbers[0]


class SequenceSet:
    """A set of non-negative ints stored as sorted, disjoint inclusive ranges: a gapless run costs one range."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: list[list[int]] | None = None) -> None:
        self.ranges: list[list[int]] = ranges if ranges is not None else []

    def add(self, number: int) -> bool:
        """Add `number`; return False if it was already there."""
        ranges = self.ranges
        if ranges:  # the common cases first, all at the top end: the next number, a hole, a resend
            last = ranges[-1]
            if last[1] + 1 == number:
                last[1] = number
                return True
            if number > last[1]:
                ranges.append([number, number])
                return True
            if number >= last[0]:
                return False
            if number + 1 == last[0] and (len(ranges) == 1 or ranges[-2][1] + 1 < number):  # a hole's top filled
                last[0] = number
                return True
        index = bisect_right(ranges, number, key=_low)
        if index and ranges[index - 1][1] >= number:
            return False
        joins_left = index > 0 and ranges[index - 1][1] + 1 == number
        joins_right = index < len(ranges) and ranges[index][0] - 1 == number
        if joins_left and joins_right:
            ranges[index - 1][1] = ranges.pop(index)[1]
        elif joins_left:
            ranges[index - 1][1] = number
        elif joins_right:
            ranges[index][0] = number
        else:
            ranges.insert(index, [number, number])
        return True

    def __contains__(self, number: int) -> bool:
        index = bisect_right(self.ranges, number, key=_low)
        return index > 0 and self.ranges[index - 1][1] >= number

    def __iter__(self) -> Iterator[int]:
        for low, high in self.ranges:
            yield from range(low, high + 1)

    def highest(self) -> int | None:
        """Return the largest number, or None when empty."""
        return self.ranges[-1][1] if self.ranges else None

    def add_run(self, low: int, high: int) -> None:
        """Add the numbers `low` to `high`, all above every number in the set (a lane's released run)."""
        ranges = self.ranges
        if ranges and ranges[-1][1] + 1 == low:
            ranges[-1][1] = high
        else:
            ranges.append([low, high])

    def below(self, limit: int | None) -> SequenceSet:
        """Return the numbers below `limit` (none if it is None), as a new set."""
        if limit is None:
            return SequenceSet()
        return SequenceSet([[low, min(high, limit - 1)] for low, high in self.ranges if low < limit])


@dataclass(slots=True)
class Lane:
    """The callbacks of one recorder uid, waiting for their turn."""

    uid: str
    #: Numbers that may open the lane: 0, plus the number after each failover notice naming this uid.
    starts: set[int] = field(default_factory=lambda: {0})
    #: The number the lane releases next; None until it knows where it starts.
    next_sequence: int | None = None
    #: Numbers received and released, in order or late: all below `next_sequence`. Those received and held are
    #: `pending`'s keys, all from `next_sequence` on. So an in-order run only ever extends the top range, and a
    #: held number joins this set in the run that releases it, instead of a range of its own merged later.
    passed: SequenceSet = field(default_factory=SequenceSet)
    #: sequence → (callback, arrival time ms) of callbacks held behind a missing number.
    pending: dict[int, tuple[AnyCallback, int]] = field(default_factory=dict)

    def received(self) -> SequenceSet:
        """Return every number received under this uid, released or held."""
        numbers = SequenceSet([[low, high] for low, high in self.passed.ranges])
        for sequence in sorted(self.pending):
            numbers.add(sequence)
        return numbers

    def release(self) -> Released:
        """Release the run of consecutive callbacks at the head of the lane."""
        pending, next_sequence = self.pending, self.next_sequence
        if next_sequence is None:
            if not pending or (lowest := min(pending)) not in self.starts:
                return []
            next_sequence = self.next_sequence = lowest
        if next_sequence not in pending:  # the hole is still open (the common case of a held callback)
            return []
        released: Released = []
        first = next_sequence
        while (entry := pending.pop(next_sequence, None)) is not None:
            released.append(Delivered(entry[0]))
            next_sequence += 1
        self.next_sequence = next_sequence
        self.passed.add_run(first, next_sequence - 1)
        return released

    def skip_hole(self, reason: GapReason) -> Released:
        """Stop waiting for the missing numbers before the lowest held callback."""
        lowest = min(self.pending)
        expected = self.next_sequence
        if expected is None:
            expected = max(start for start in self.starts if start <= lowest)
        self.next_sequence = lowest
        gap = Gap(self.uid, expected, lowest - 1, reason, self.pending[lowest][0])
        return ([gap] if expected < lowest else []) + self.release()

    def waiting_since(self) -> int:
        """Return when the oldest held callback arrived (the hole is as old as that)."""
        if len(self.pending) == 1:  # the common case, without a generator
            return next(iter(self.pending.values()))[1]
        return min(arrived for _, arrived in self.pending.values())


@dataclass(slots=True)
class ReorderBuffer:
    """All lanes of one recording, and the latest time it has seen."""

    policy: ReorderPolicy = field(default_factory=ReorderPolicy)
    lanes: dict[str, Lane] = field(default_factory=dict)
    #: Highest `now_ms` offered: delivery clocks (notifyMs) may step back, the buffer's never does.
    clock_ms: int = 0
    #: When the latest delivery (a duplicate included) was offered: the recording's last sign of life.
    last_offer_ms: int = 0
    #: How many callbacks the lanes hold, counted anew whenever a held callback may have come or gone (only
    #: `offer` and `take` add one).
    waiting: int = field(init=False, repr=False, compare=False)
    #: No hole reaches the gap timeout before this (NEVER while nothing is held): a bound, lowered whenever a
    #: callback is held, made exact by `expire`. So the fold asks `expire` only when it may skip something,
    #: instead of looking at every lane on every delivery while a hole is open.
    expires_at_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.lanes:  # a stored buffer; a new one holds nothing
            self.waiting = self.buffered()
            self.expires_at_ms = self._next_expiry_ms()
        else:
            self.waiting, self.expires_at_ms = 0, NEVER

    def take(self, callback: AnyCallback, now_ms: int) -> Taken | list[AnyCallback]:
        """Take one delivery as `offer` would, if it is a common case, without building a `Released` list.

        Next in line (with the run it releases from its lane: a list), late, held behind a hole, or a
        duplicate: the fold then applies what it is told to itself. Anything else (a full lane, a failover
        notice whose new uid already holds callbacks or is its own) is LEFT_FOR_OFFER, the buffer as it was
        but for the lane of a uid never seen.
        """
        payload = callback.payload
        opens: str | None = None  # the uid a failover notice opens a lane for
        if type(callback) in _FAILOVERS:  # not isinstance: pydantic's ABC check costs as much as an offer
            opens = str(payload.details.newUid)  # type: ignore[union-attr]  # a failover notice's details
            opened = self.lanes.get(opens)
            if opens == payload.uid or (opened is not None and opened.pending):
                return LEFT_FOR_OFFER  # opening that lane may release callbacks: `offer` says which
        lane = self.lanes.get(payload.uid) or self.lane(payload.uid)
        sequence = payload.sequence
        pending = lane.pending
        next_sequence = lane.next_sequence
        if next_sequence is None and sequence in lane.starts and (not pending or sequence < min(pending)):
            next_sequence = sequence  # the lane starts here
        taken: Taken | list[AnyCallback]
        if next_sequence is None or sequence > next_sequence:  # received at or above the next: held, if at all
            if sequence in pending:
                taken = DUPLICATE
            elif len(pending) >= self.policy.max_buffered:
                return LEFT_FOR_OFFER  # a full lane skips its hole
            else:
                taken = HELD
        elif sequence == next_sequence:
            taken = [callback] if pending else NEXT_IN_LINE  # a list: it fills the hole, a run follows
        else:
            taken = LATE if lane.passed.add(sequence) else DUPLICATE
        if now_ms > self.clock_ms:
            self.clock_ms = now_ms
        clock_ms = self.last_offer_ms = self.clock_ms
        if taken == NEXT_IN_LINE:
            lane.next_sequence = sequence + 1
            passed = lane.passed.ranges  # SequenceSet.add_run, inline: once a delivery
            if passed and passed[-1][1] + 1 == sequence:
                passed[-1][1] = sequence
            else:
                passed.append([sequence, sequence])
        elif taken == HELD:
            pending[sequence] = (callback, clock_ms)
            self.waiting += 1
            if clock_ms + self.policy.gap_timeout_ms < self.expires_at_ms:
                self.expires_at_ms = clock_ms + self.policy.gap_timeout_ms
        elif type(taken) is list:
            first = sequence
            sequence += 1
            while (entry := pending.pop(sequence, None)) is not None:
                taken.append(entry[0])
                sequence += 1
            lane.next_sequence = sequence
            lane.passed.add_run(first, sequence - 1)
            self.waiting -= len(taken) - 1
            if not self.waiting:  # nothing held anywhere now: no hole to time out
                self.expires_at_ms = NEVER
        elif taken == DUPLICATE:
            return DUPLICATE
        if opens is not None:  # as `_open_after_failover`, which here releases nothing: that lane holds nothing
            self.lane(opens).starts.add(payload.sequence + 1)
        return taken

    def expiry_due(self) -> bool:
        """Return whether `expire` may skip a hole now (else it would release nothing)."""
        return self.clock_ms >= self.expires_at_ms

    def offer(self, callback: AnyCallback, now_ms: int) -> Released | None:
        """Take one delivery; return what it releases, or None if it is a duplicate."""
        if now_ms > self.clock_ms:
            self.clock_ms = now_ms
        self.last_offer_ms = self.clock_ms
        payload = callback.payload
        lane = self.lanes.get(payload.uid) or self.lane(payload.uid)
        sequence = payload.sequence
        if lane.next_sequence is not None and sequence < lane.next_sequence:
            if not lane.passed.add(sequence):
                return None
            released: Released = [Delivered(callback, late=True)]
        elif sequence in lane.pending:
            return None
        elif sequence == lane.next_sequence and not lane.pending:  # the common case: next in line, nothing held
            lane.next_sequence = sequence + 1
            lane.passed.add_run(sequence, sequence)
            released = [Delivered(callback)]
        else:
            pending = lane.pending
            held = len(pending)
            pending[sequence] = (callback, self.clock_ms)
            released = lane.release()
            if len(pending) > self.policy.max_buffered:
                released += lane.skip_hole("buffer_full")
            self.waiting += len(pending) - held
            if not self.waiting:  # nothing held anywhere now: no hole to time out
                self.expires_at_ms = NEVER
            elif self.clock_ms + self.policy.gap_timeout_ms < self.expires_at_ms:
                self.expires_at_ms = self.clock_ms + self.policy.gap_timeout_ms
        if type(callback) in _FAILOVERS:  # not isinstance: pydantic's ABC check costs as much as an offer
            released += self._open_after_failover(callback)  # type: ignore[arg-type]  # a failover notice
            self.waiting = self.buffered()
        return released

    def holding(self) -> bool:
        """Return whether any lane holds a callback behind a missing number."""
        return self.waiting > 0

    def expire(self, now_ms: int) -> Released:
        """Skip every hole that has been waited for longer than the gap timeout."""
        if now_ms > self.clock_ms:
            self.clock_ms = now_ms
        released: Released = []
        if self.clock_ms < self.expires_at_ms:
            return released
        deadline = self.clock_ms - self.policy.gap_timeout_ms
        for lane in self.lanes.values():
            while lane.pending and lane.waiting_since() <= deadline:
                released += lane.skip_hole("timeout")
        if released:
            self.waiting = self.buffered()
        self.expires_at_ms = self._next_expiry_ms()
        return released

    def drain(self) -> Released:
        """Release everything held, in order, reporting every hole (end of input)."""
        released: Released = []
        for lane in self.lanes.values():
            while lane.pending:
                released += lane.skip_hole("end_of_input")
        self.waiting = 0
        self.expires_at_ms = NEVER
        return released

    def lane(self, uid: str) -> Lane:
        """Return the lane of `uid`, opening it on first sight."""
        lane = self.lanes.get(uid)
        if lane is None:
            lane = self.lanes[uid] = Lane(uid)
        return lane

    def gap_deadline_ms(self) -> int | None:
        """Return when the oldest hole will have waited the gap timeout, or None if nothing is held."""
        waiting = [lane.waiting_since() for lane in self.lanes.values() if lane.pending]
        return min(waiting) + self.policy.gap_timeout_ms if waiting else None

    def _next_expiry_ms(self) -> int:
        deadline = self.gap_deadline_ms()
        return NEVER if deadline is None else deadline

    def holds(self, uid: str, sequence: int) -> bool:
        """Return whether the callback (uid, sequence) waits behind a missing number."""
        lane = self.lanes.get(uid)
        return lane is not None and sequence in lane.pending

    def buffered(self) -> int:
        """Return how many callbacks wait behind missing numbers."""
        return sum(len(lane.pending) for lane in self.lanes.values())

    def _open_after_failover(self, notice: callbacks.SessionFailover | compiled.SessionFailover) -> Released:
        # If the counter continues under the new uid, its first number follows the notice's own number
        # (or is the notice's number when the notice already carries the new uid).
        new_uid = str(notice.payload.details.newUid)
        sequence = notice.payload.sequence
        lane = self.lane(new_uid)
        lane.starts.add(sequence if notice.payload.uid == new_uid else sequence + 1)
        return lane.release()


#: The failover notice (eventType 12) in both its forms (a set: `type(x) in` a tuple compares each class).
_FAILOVERS: frozenset[object] = frozenset((callbacks.SessionFailover, compiled.SessionFailover))
