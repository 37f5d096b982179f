"""The log throttles: one line per key and interval, and how many were held back in between."""

from __future__ import annotations

import logging

from ingest.logs import RepeatFilter, Throttle


def record(logger: str, message: str, *, at_s: float) -> logging.LogRecord:
    made = logging.getLogger(logger).makeRecord(logger, logging.ERROR, __file__, 1, message, (), None)
    made.created = at_s
    return made


def test_the_first_line_of_a_key_passes_with_nothing_held_back() -> None:
    assert Throttle(1000).allow(("agora", "missing"), now_ms=5) == 0


def test_lines_within_the_interval_are_held_back_and_counted_on_the_next_that_passes() -> None:
    throttle = Throttle(1000)
    throttle.allow(("agora", "missing"), now_ms=0)
    assert [throttle.allow(("agora", "missing"), now_ms=t) for t in (1, 500, 999)] == [None, None, None]
    assert throttle.allow(("agora", "missing"), now_ms=1000) == 3
    assert throttle.allow(("agora", "missing"), now_ms=2000) == 0


def test_keys_are_throttled_apart() -> None:
    throttle = Throttle(1000)
    throttle.allow(("agora", "missing"), now_ms=0)
    assert throttle.allow(("agora", "mismatch"), now_ms=1) == 0
    assert throttle.allow(("anyrtc", "missing"), now_ms=2) == 0
    assert throttle.allow(("agora", "missing"), now_ms=3) is None


def test_a_library_line_repeated_within_the_interval_is_held_back_then_passes_saying_how_many() -> None:
    repeats = RepeatFilter("aiokafka", interval_ms=10_000)
    passed = [repeats.filter(record("aiokafka.conn", "Unable connect to %s", at_s=t / 10)) for t in range(50)]
    assert passed == [True] + [False] * 49
    later = record("aiokafka.conn", "Unable connect to %s", at_s=10.0)
    assert repeats.filter(later)
    assert later.held_back == 49


def test_other_loggers_and_other_lines_are_never_held_back() -> None:
    repeats = RepeatFilter("aiokafka", interval_ms=10_000)
    assert all(repeats.filter(record("ingest.service", "publish failed", at_s=0.1 * t)) for t in range(5))
    assert repeats.filter(record("aiokafka.client", "Unable to update metadata", at_s=0.0))
    assert repeats.filter(record("aiokafka.conn", "Unable connect to %s", at_s=0.1))
