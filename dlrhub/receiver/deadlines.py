"""Deadlines for what a request waits on, without a timer per request.

A callback waits for its body (`server.body_timeout`) and then for its commit
(`server.ingest_timeout`); neither may wait forever, or a slow client or a
stalled store holds the provider's connection open. A timer per request
(`asyncio.timeout`, `wait_for`) arms and cancels a timer handle on the hot path.
Here one timeout is shared by many waits that start in order, so their
deadlines come in order too: a dict (in insertion order) holds them, and one
timer, armed for the oldest, fires when that one is due. Waits that ended in
time were removed meanwhile; the timer then finds the oldest left not yet due
and re-arms for it.

`add` costs a dict insertion and a clock read; the timer fires about once per
timeout while waits come and go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deadlines(Generic[T]):
    """Things waited on for at most `seconds`; `expire(thing)` is called for each that is not
    `discard`ed by then (it must not wait: set a future's exception, cancel a task)."""

    def __init__(self, seconds: float, expire: Callable[[T], None]) -> None:
        self.seconds = seconds
        self._expire = expire
        self._waiting: dict[int, tuple[T, float]] = {}
        self._next_key = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, thing: T, loop: asyncio.AbstractEventLoop) -> int:
        """Watch `thing` from now on; the key is for `discard`."""
        key = self._next_key
        self._next_key = key + 1
        self._waiting[key] = (thing, loop.time() + self.seconds)
        if self._timer is None or self._timer_loop is not loop:
            self._timer_loop = loop
            self._timer = loop.call_later(self.seconds, self._fire)
        return key

    def discard(self, key: int) -> bool:
        """Stop watching; False if its deadline had passed (it was expired) or it was gone."""
        return self._waiting.pop(key, None) is not None

    def _fire(self) -> None:
        loop = self._timer_loop
        assert loop is not None
        self._timer = None
        now = loop.time()
        overdue: list[int] = []
        for key, (_, deadline) in self._waiting.items():
            if deadline > now:
                self._timer = loop.call_at(deadline, self._fire)
                break
            overdue.append(key)
        for thing, _ in [self._waiting.pop(key) for key in overdue]:
            self._expire(thing)
