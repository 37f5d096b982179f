"""Many concurrent waits of one fixed length, expired by a single timer (cheaper than one timeout each)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Deadlines:
    """Fail each watched future with TimeoutError once `timeout_s` passed since it was watched, unless done.

    `asyncio.timeout` schedules and cancels a timer of its own on the event loop's heap, and looks up the
    current task, for every request (a measured tenth of the ingest's CPU). With one fixed length, deadlines
    expire in the order the futures were watched: a queue in that order and one timer, set for the oldest
    future still pending, are enough.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._watched: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail the future with TimeoutError if it is not done `timeout_s` from now."""
        watched = self._watched
        # Futures are mostly done in the order they were watched: drop those from the front, so that the queue
        # holds little more than the pending ones.
        while watched and watched[0][1].done():
            watched.popleft()
        loop = future.get_loop()
        if loop is not self._loop:  # another event loop (a test's): the old one's timer will never fire
            self._loop, self._timer = loop, None
            watched.clear()
        watched.append((loop.time() + self.timeout_s, future))
        if self._timer is None:
            self._timer = loop.call_at(watched[0][0], self._expire, loop)

    def pending(self) -> int:
        """Return how many futures are queued (the pending ones, and some done ones not dropped yet)."""
        return len(self._watched)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        watched, now = self._watched, loop.time()
        while watched and (watched[0][1].done() or watched[0][0] <= now):
            _, future = watched.popleft()
            if not future.done():
                future.set_exception(TimeoutError())
        if watched:
            self._timer = loop.call_at(watched[0][0], self._expire, loop)
