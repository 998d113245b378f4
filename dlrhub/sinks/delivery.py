"""Handing events to the sink: lanes, batches and attempts.

With `max_in_flight > 1` the events are split into lanes by message
(provider + message id), so batches run concurrently while the events of one
message keep their store order. A batch that is given up (`retry.py`) is
tried again event by event, so one poisoned event is dead-lettered alone and
the others go through. `SinkGone` and `SinkPaused` hold the sink
(`control.py`) and interrupt the delivery.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dlrhub.event import Event
from dlrhub.sinks.base import Sink, SinkGone, SinkPaused, SinkUnavailable
from dlrhub.sinks.control import Control, Interrupted
from dlrhub.sinks.last_error import LastError
from dlrhub.sinks.reporting import SinkStats
from dlrhub.sinks.retry import RetryCounts
from dlrhub.sinks.settings import SinkConfig


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an event was given up: what its dead letter says."""

    error: str
    attempts: int


OnDone = Callable[[Event, Failure | None], Awaitable[None]]


class Delivery:
    """Delivers events to one sink and reports each one as done: acknowledged or failed."""

    def __init__(
        self,
        config: SinkConfig,
        sink: Sink,
        control: Control,
        last_error: LastError,
        stats: SinkStats,
        retry_counts: RetryCounts,
        *,
        on_delivered: Callable[[datetime], None],
        uniform: Callable[[float, float], float],
    ) -> None:
        self.config = config
        self.sink = sink
        self.control = control
        self.last_error = last_error
        self.stats = stats
        self.retry_counts = retry_counts
        self.on_delivered = on_delivered
        self.uniform = uniform

    async def deliver(self, events: Sequence[Event], done: OnDone) -> None:
        """Deliver `events`, calling `done` for each; raises `Interrupted` when held or stopped."""
        if not events:
            return
        lanes = self._lanes(events)
        if len(lanes) == 1:
            await self._deliver_lane(lanes[0], done)
            return
        tasks = [asyncio.create_task(self._deliver_lane(lane, done)) for lane in lanes]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _lanes(self, events: Sequence[Event]) -> list[list[Event]]:
        count = self.config.max_in_flight
        if count == 1:
            return [list(events)]
        lanes: dict[int, list[Event]] = {}
        for event in events:
            key = f"{event.provider}\x00{event.message_id}" if event.message_id else event.id
            lanes.setdefault(zlib.crc32(key.encode()) % count, []).append(event)
        return list(lanes.values())

    async def _deliver_lane(self, events: list[Event], done: OnDone) -> None:
        size = self.config.batch_size
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            failure = await self._attempt(chunk)
            if failure is None:
                for event in chunk:
                    await done(event, None)
            elif len(chunk) == 1:
                await done(chunk[0], failure)
            else:
                # Find the poisoned event(s): the others must not share their fate.
                for event in chunk:
                    await done(event, await self._attempt([event]))

    async def _attempt(self, chunk: list[Event]) -> Failure | None:
        """Deliver `chunk` until it is acknowledged (None) or given up (the last failure)."""
        key = chunk[0].seq
        retries = self.retry_counts.retries(key, self.config.retry, self.uniform)
        while True:
            self.control.raise_if_interrupted()
            try:
                async with asyncio.timeout(self.config.timeout * 1.5 + 1.0):
                    await self.sink.deliver(chunk)
            except SinkUnavailable as error:
                self.stats.state = "down"
                self.last_error.log_unavailable(error)
                await self.last_error.record(self.last_error.describe(error))
                delay = retries.after_unavailable(error.retry_after)
            except SinkGone as error:
                await self._hold(self.last_error.describe(error), disable=True)
                raise Interrupted from None
            except SinkPaused as error:
                await self._hold(self.last_error.describe(error), disable=False)
                raise Interrupted from None
            except Exception as error:
                text = self.last_error.describe(error)
                self.stats.failed_attempts += 1
                self.stats.state = "retrying"
                await self.last_error.record(text)
                wait = retries.after_failure(error)
                if wait is None:
                    await self.retry_counts.finished(key)
                    return Failure(text, retries.attempts)
                await self.retry_counts.failed(key, retries)
                delay = wait
            else:
                if retries.attempts:
                    await self.retry_counts.finished(key)
                self.stats.delivered += len(chunk)
                self.stats.state = "running"
                self.last_error.delivered()
                self.on_delivered(datetime.now(UTC))
                return None
            await self.control.sleep_or_interrupt(delay)

    async def _hold(self, reason: str, *, disable: bool) -> None:
        """The sink asked to be disabled or paused: do so, and show why."""
        if disable:
            await self.control.disable(reason)
        else:
            await self.control.pause(reason)
        await self.last_error.record(reason)
