"""One timer for many waits of the same length: each watched future fails with TimeoutError unless done in time."""

from __future__ import annotations

import asyncio

import pytest

from ingest.deadlines import Deadlines


def future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


async def test_a_future_not_done_in_time_fails_with_a_timeout() -> None:
    deadlines = Deadlines(0.01)
    waiting = future()
    deadlines.watch(waiting)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(waiting, 5)


async def test_a_future_done_in_time_keeps_its_result() -> None:
    deadlines = Deadlines(3600)
    waiting = future()
    deadlines.watch(waiting)
    waiting.set_result(None)
    await asyncio.sleep(0)
    assert waiting.result() is None


async def test_every_pending_future_expires_and_none_done_before_is_touched() -> None:
    deadlines = Deadlines(0.01)
    watched = [future() for _ in range(5)]
    for waiting in watched:
        deadlines.watch(waiting)
    watched[1].set_result(None)
    watched[3].cancel()
    done, _ = await asyncio.wait(watched, timeout=5)
    assert len(done) == 5
    assert [type(w.exception()) for w in watched if not w.cancelled() and w is not watched[1]] == [TimeoutError] * 3
    assert watched[1].result() is None


async def test_futures_watched_later_expire_later_with_one_timer_rearmed_for_them() -> None:
    deadlines = Deadlines(0.05)
    first = future()
    deadlines.watch(first)
    await asyncio.sleep(0.03)
    second = future()
    deadlines.watch(second)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first, 5)
    assert not second.done() or isinstance(second.exception(), TimeoutError)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(second, 5)


async def test_futures_done_in_order_do_not_pile_up_in_the_queue() -> None:
    deadlines = Deadlines(3600)
    for _ in range(1000):
        waiting = future()
        deadlines.watch(waiting)
        waiting.set_result(None)
    assert deadlines.pending() <= 1


def test_a_deadlines_object_keeps_working_on_a_new_event_loop() -> None:
    deadlines = Deadlines(0.01)

    async def one_wait() -> None:
        waiting = future()
        deadlines.watch(waiting)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(one_wait())
    asyncio.run(one_wait())
