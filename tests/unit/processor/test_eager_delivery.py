"""The eager delivery (processor.faust_internals.EagerDeliveryConsumer): faust's per-record race, without its tasks.

Faust's drain loop hands each record to the app by `wait_first(callback(message), suspend_flow.wait())`. The
override must deliver what faust delivers and discard what faust discards: a callback that completes without
waiting is delivered (no task made); one that waits is raced against the flow's suspension, and cancelled by it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest

from processor.faust_internals import EagerDeliveryConsumer, EagerDeliveryTransport, deliver_eagerly


@pytest.fixture
async def consumer() -> AsyncIterator[EagerDeliveryConsumer]:  # made in the test's loop, as faust's in the worker's
    app = faust.App("eager-test", broker="kafka://127.0.0.1:1", store="memory://")
    deliver_eagerly(app)
    assert isinstance(app.transport, EagerDeliveryTransport)
    made = app.consumer
    assert isinstance(made, EagerDeliveryConsumer)
    yield made
    made._thread.thread_loop.close()  # the Kafka client's thread is never started here: its loop is ours to close


def tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def test_a_callback_that_never_waits_is_delivered_at_once_without_a_task(
    consumer: EagerDeliveryConsumer,
) -> None:
    delivered: list[int] = []
    made: list[set[asyncio.Task[Any]]] = []

    async def callback(record: int) -> str:
        delivered.append(record)
        made.append(tasks())
        return "done"

    before = tasks()
    suspended = consumer.suspend_flow.wait()
    results = await consumer.wait_first(callback(1), suspended)
    assert delivered == [1]
    assert made == [before]  # ran in the caller's task, none made
    assert results.results == ["done"]
    assert not results.stopped
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED  # never started: no "never awaited"


async def test_a_callback_waiting_for_the_flow_is_cancelled_when_the_flow_is_suspended(
    consumer: EagerDeliveryConsumer,
) -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def callback() -> None:
        steps.append("decoded")
        try:
            await gate.wait()  # as faust's on_message waits for the flow control during a rebalance
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("delivered")

    racing = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert steps == ["decoded"]
    consumer.stop_flow()
    results = await racing
    gate.set()
    await asyncio.sleep(0.01)
    assert steps == ["decoded", "cancelled"]  # discarded, as faust discards it
    assert results.done
    assert not results.stopped
    assert len(results.results) == 1  # the suspension won alone


async def test_a_callback_that_waits_and_then_completes_is_delivered(consumer: EagerDeliveryConsumer) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)  # full: the callback waits for room, as faust's does on a full stream buffer

    async def callback(record: int) -> int:
        await asyncio.sleep(0)  # a bare yield first
        await queue.put(record)
        return record

    racing = asyncio.ensure_future(consumer.wait_first(callback(7), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert not racing.done()
    assert queue.get_nowait() == 0
    results = await asyncio.wait_for(racing, 1)
    assert results.results == [7]
    assert queue.get_nowait() == 7


async def test_a_callback_failing_at_once_raises_as_in_faust(consumer: EagerDeliveryConsumer) -> None:
    async def callback() -> None:
        raise ValueError("undecodable")

    suspended = consumer.suspend_flow.wait()
    with pytest.raises(ValueError, match="undecodable"):
        await consumer.wait_first(callback(), suspended)
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED


async def test_a_callback_failing_after_waiting_raises_as_in_faust(consumer: EagerDeliveryConsumer) -> None:
    async def callback() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("late")

    with pytest.raises(ValueError, match="late"):
        await consumer.wait_first(callback(), consumer.suspend_flow.wait())


async def test_other_waits_of_the_consumer_are_mode_s(consumer: EagerDeliveryConsumer) -> None:
    results = await consumer.wait_first(asyncio.sleep(0, "slept"), timeout=1)
    assert results.results == ["slept"]
    event = asyncio.Event()
    event.set()
    results = await consumer.wait_first(event.wait(), asyncio.sleep(10), timeout=1)
    assert results.results == [True]
