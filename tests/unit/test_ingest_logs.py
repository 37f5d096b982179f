"""The log throttle: one line per key and interval, and how many were held back in between."""

from __future__ import annotations

from ingest.logs import Throttle


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
