"""Handing events to the sink: lanes, batches and attempts.

With `max_in_flight > 1` the events are split into lanes by message
(provider + message id), so batches run concurrently while the events of one
message keep their store order. A batch that is given up (`retry.py`) is
tried again event by event, so one poisoned event is dead-lettered alone and
the others go through. `SinkGone` and `SinkPaused` hold the sink
(`control.py`) and interrupt the delivery.

Each attempt gives a line on `dlrhub.sinks.engine` (fields: sink, outcome,
attempt, duration_ms, events, seq_first, seq_last, event_ids, request_ids; and
event_id, seq, request_id for a single event). At 5,000 events/s a line per
delivered batch would be the bulk of the log, so the levels bound the volume:

| outcome       | level   | when                                                    |
|---------------|---------|---------------------------------------------------------|
| `delivered`   | DEBUG   | the sink acknowledged the batch                         |
| `unavailable` | DEBUG   | the sink is down; a WARNING says so once per 30 s (`last_error.py`) |
| `retrying`    | WARNING | the sink failed it; it is tried again after a backoff   |
| `given_up`    | WARNING | the sink failed it for the last time (`retry.py`)       |

Every attempt is also kept as a row per event (`attempts.py`), whatever the level.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dlrhub.event import Event
from dlrhub.sinks.attempts import AttemptLog
from dlrhub.sinks.base import Sink, SinkGone, SinkPaused, SinkUnavailable
from dlrhub.sinks.control import Control, Interrupted
from dlrhub.sinks.last_error import LastError
from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.sinks.retry import RetryCounts
from dlrhub.sinks.settings import SinkConfig
from dlrhub.store.sink_state import AttemptOutcome


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
        attempts: AttemptLog,
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
        self.attempts = attempts
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
        attempt = retries.attempts  # a restart or takeover goes on counting
        while True:
            self.control.raise_if_interrupted()
            attempt += 1
            at = datetime.now(UTC)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.timeout * 1.5 + 1.0):
                    await self.sink.deliver(chunk)
            except SinkUnavailable as error:
                self.stats.state = "down"
                self.last_error.log_unavailable(error)
                text = self.last_error.describe(error)
                await self.last_error.record(text)
                delay = retries.after_unavailable(error.retry_after)
                self._finish(chunk, attempt, "unavailable", at, started, logging.DEBUG, text)
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
                outcome: AttemptOutcome = "given_up" if wait is None else "retrying"
                self._finish(chunk, attempt, outcome, at, started, logging.WARNING, text)
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
                self._finish(chunk, attempt, "delivered", at, started, logging.DEBUG)
                return None
            await self.control.sleep_or_interrupt(delay)

    def _finish(
        self,
        chunk: list[Event],
        attempt: int,
        outcome: AttemptOutcome,
        at: datetime,
        started: float,
        level: int,
        error: str | None = None,
    ) -> None:
        """The attempt's rows and line (levels in the module docstring); `error` is redacted."""
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self.attempts.add(chunk, attempt, outcome, at, duration_ms, error)
        if log.isEnabledFor(level):
            self._log_attempt(chunk, attempt, outcome, duration_ms, level, error)

    def _log_attempt(
        self,
        chunk: list[Event],
        attempt: int,
        outcome: str,
        duration_ms: float,
        level: int,
        error: str | None,
    ) -> None:
        request_ids = list(dict.fromkeys(_request_ids(chunk)))
        fields: dict[str, object] = {
            "sink": self.config.name,
            "outcome": outcome,
            "attempt": attempt,
            "duration_ms": duration_ms,
            "events": len(chunk),
            "seq_first": chunk[0].seq,
            "seq_last": chunk[-1].seq,
            "event_ids": [event.id for event in chunk],
            "request_ids": request_ids,
        }
        if len(chunk) == 1:
            fields |= {"event_id": chunk[0].id, "seq": chunk[0].seq}
            if request_ids:
                fields["request_id"] = request_ids[0]
        if error is not None:
            fields["error"] = error
        seqs = f"seq {chunk[0].seq}" + (f"..{chunk[-1].seq}" if len(chunk) > 1 else "")
        log.log(
            level,
            "sink %s: %s %d event(s) (%s, request_id %s) on attempt %d in %.1f ms%s",
            self.config.name,
            outcome,
            len(chunk),
            seqs,
            ",".join(request_ids) or "-",
            attempt,
            duration_ms,
            f": {error}" if error is not None else "",
            extra=fields,
        )

    async def _hold(self, reason: str, *, disable: bool) -> None:
        """The sink asked to be disabled or paused: do so, and show why."""
        if disable:
            await self.control.disable(reason)
        else:
            await self.control.pause(reason)
        await self.last_error.record(reason)


def _request_ids(events: Sequence[Event]) -> list[str]:
    """The request ids the events' callbacks came with (`extra.request_id`), in order."""
    found = []
    for event in events:
        request_id = event.extra.get("request_id")
        if isinstance(request_id, str):
            found.append(request_id)
    return found
