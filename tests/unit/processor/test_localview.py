"""The local view: filled from the table after an assignment, so ticks go out only when due, never one per recording."""

from __future__ import annotations

import asyncio

import pytest

from processor import localview
from processor.localview import LocalView
from processor.pipeline import Known

NOW = 1_700_000_000_000


def table(count: int, *, due_every: int = 0) -> dict[bytes, Known]:
    """`count` stored recordings, every `due_every`-th of them due now (none if 0), the rest in an hour."""
    return {
        b"sid-%05d" % n: Known(NOW if due_every and n % due_every == 0 else NOW + 3_600_000, n % 3, 4, NOW - n)
        for n in range(count)
    }


async def test_after_an_assignment_the_view_learns_every_recording_from_the_table_and_ticks_only_the_due_ones():
    stored = table(5_000, due_every=100)
    view = LocalView()
    view.clear()
    assert not view.complete
    await view.fill(list(stored), stored.get)
    assert view.complete
    assert view.status == dict.fromkeys(stored, 4)
    assert sum(view.buffered.values()) == sum(known.buffered for known in stored.values())
    assert len(view.due(NOW)) == 50  # not 5,000: the ones whose gap timeout or retention has come
    assert view.due(NOW) == []


async def test_news_from_records_processed_since_the_assignment_beat_the_older_table():
    stored = table(3)
    view = LocalView()
    newer = Known(NOW + 5, 0, 7, NOW)
    view.deadlines[b"sid-00000"], view.status[b"sid-00000"] = newer.deadline_ms, newer.status
    await view.fill(list(stored), stored.get)
    assert view.status == {b"sid-00000": 7, b"sid-00001": 4, b"sid-00002": 4}


async def test_a_recording_forgotten_while_the_view_fills_is_left_out():
    stored = table(3)
    view = LocalView()
    await view.fill([*stored, b"gone"], stored.get)
    assert set(view.status) == set(stored)


async def test_an_assignment_while_the_view_fills_stops_it_incomplete(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(localview, "FILL_CHUNK", 10)
    stored = table(100)
    view = LocalView()
    filling = asyncio.ensure_future(view.fill(list(stored), stored.get))
    await asyncio.sleep(0)  # the first chunk is in
    view.clear()  # partitions assigned again
    await filling
    assert not view.complete
    assert view.status == {}


async def test_records_are_processed_between_chunks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(localview, "FILL_CHUNK", 10)
    stored = table(100)
    view, seen = LocalView(), []

    async def processing() -> None:
        while not view.complete:
            seen.append(len(view.status))
            await asyncio.sleep(0)

    await asyncio.gather(view.fill(list(stored), stored.get), processing())
    assert len(set(seen)) >= 5  # the event loop ran other tasks while the view filled
