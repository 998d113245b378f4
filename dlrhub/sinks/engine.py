"""The delivery engine: one `SinkRunner` per configured sink.

A runner reads the event log in pages after its durable cursor, keeps the
events its filter matches and hands them to the sink in batches. With
`max_in_flight > 1` the page is split into lanes by message (provider +
message id), so batches run concurrently while the events of one message keep
their store order. The cursor moves only over events that are acknowledged,
dead-lettered or filtered out, and only as a contiguous prefix of the log (a
watermark); it is committed by a background task as soon as the previous
commit is done, so a crash re-delivers at most what was in flight.

Retries: exponential backoff with full jitter (`backoff.py`), `retry_after` as
a floor. A batch that exhausts its attempts or age, or is rejected, is retried
event by event, so one poisoned event is dead-lettered alone and the others go
through. Pause, disable and stop interrupt waiting and take effect before the
next attempt.

Besides the live cursor a runner works off dead letters queued by
`dlrhub dlq retry` and replay jobs queued by `dlrhub replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dlrhub.event import Event
from dlrhub.redact import redact_text
from dlrhub.sinks.backoff import retry_delay
from dlrhub.sinks.base import (
    DeliveryError,
    DeliveryRejected,
    Sink,
    SinkGone,
    SinkPaused,
    SinkUnavailable,
)
from dlrhub.sinks.settings import SinkConfig
from dlrhub.store.base import EventFilter, Store, StoreUnavailable
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 500
ERROR_RECORD_INTERVAL = 2.0  # seconds between writes of the same last error
UNAVAILABLE_LOG_INTERVAL = 30.0
MIN_PAGE = 200
MAX_PAGE = 5000


class Interrupted(Exception):
    """Stop delivering now: the runner is stopping, or the sink was paused or disabled."""


@dataclass(frozen=True, slots=True)
class Failure:
    error: str
    attempts: int


@dataclass
class SinkStats:
    """What the metrics and health pages show; counters since this process started."""

    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dead_letters_waiting: int = 0
    lag_events: int = 0
    lag_seconds: float = 0.0
    after_seq: int = 0
    state: str = "starting"  # starting, running, retrying, down, paused, disabled, stopped
    last_error: str | None = None


OnDone = Callable[[Event, Failure | None], Awaitable[None]]


class Watermark:
    """The highest seq below which every event of the page is finished."""

    def __init__(self, matching: Sequence[Event], page_end: int) -> None:
        self._seqs = [event.seq for event in matching]
        self._done: set[int] = set()
        self._next = 0
        self.page_end = page_end

    def finish(self, seq: int) -> None:
        self._done.add(seq)
        while self._next < len(self._seqs) and self._seqs[self._next] in self._done:
            self._next += 1

    @property
    def value(self) -> int:
        if self._next < len(self._seqs):
            return self._seqs[self._next] - 1
        return self.page_end


class SinkRunner:
    def __init__(
        self,
        config: SinkConfig,
        sink: Sink,
        log_store: Store,
        state: SinkStateStore,
        *,
        poll_interval: float = 0.02,
        control_interval: float = 0.5,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.config = config
        self.sink = sink
        self.events_log = log_store
        self.state = state
        self.poll_interval = poll_interval
        self.control_interval = control_interval
        self.uniform = uniform
        self.stats = SinkStats()
        self.page_size = min(max(config.batch_size * config.max_in_flight * 4, MIN_PAGE), MAX_PAGE)
        self._secrets = config.secrets()
        self._stopping = False
        self._wake = asyncio.Event()  # set on stop, pause or disable: cut sleeps short
        self._paused = False
        self._disabled: str | None = None
        self._retries_pending = 0
        self._replays_pending = 0
        self._read_after = 0
        self._watermark: Watermark | None = None
        self._committed = 0
        self._uncommitted_delivered = 0
        self._last_delivered_at: datetime | None = None
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._closing = False
        self._recorded_error: tuple[str, float] | None = None
        self._head = 0
        self._unavailable_logged = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # Lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until `stop()`; an unexpected error restarts the runner after a pause."""
        while not self._stopping:
            try:
                await self._run_once()
            except Exception:
                log.exception("sink %s: the runner failed; restarting in 5s", self.name)
                self.stats.state = "down"
                await self._idle(5.0)
        self.stats.state = "stopped"

    async def _run_once(self) -> None:
        start_after = 0
        if self.config.start == "end":
            start_after = await head_seq(self.events_log)
        current = await self.state.ensure(self.name, start_after=start_after)
        self._committed = self._read_after = self.stats.after_seq = current.after_seq
        self._watermark = None
        self._closing = False
        self._apply_control(current.paused, current.disabled_reason)
        await self.sink.open()
        watcher = asyncio.create_task(self._watch_control(), name=f"dlrhub-sink-{self.name}-ctl")
        committer = asyncio.create_task(self._commit_loop(), name=f"dlrhub-sink-{self.name}-cmt")
        try:
            while not self._stopping:
                if self._paused or self._disabled:
                    await self._idle(self.control_interval)
                    continue
                if self.stats.state in ("starting", "paused", "disabled"):
                    self.stats.state = "running"
                try:
                    worked = await self._work_once()
                except Interrupted:
                    self._rewind()
                    continue
                except (StoreUnavailable, SinkStateUnavailable) as error:
                    log.warning("sink %s: %s; retrying in 1s", self.name, error)
                    self._rewind()
                    await self._idle(1.0)
                    continue
                if not worked:
                    await self._idle(self.poll_interval)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # Not cancelled mid-commit: a cancelled commit may have landed anyway,
            # and its delivered count would then be added twice.
            self._closing = True
            self._commit_wanted.set()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            try:
                await self._commit()
            except SinkStateUnavailable as error:
                log.warning(
                    "sink %s: cannot commit its cursor on the way out: %s", self.name, error
                )
            await self.sink.close()

    def _rewind(self) -> None:
        """After an interrupted page, read again from what is durably finished."""
        if self._watermark is not None:
            self._read_after = self._watermark.value
            self._watermark = None
        self._commit_wanted.set()

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _sleep_or_interrupt(self, seconds: float) -> None:
        await self._idle(seconds)
        self._raise_if_interrupted()

    def _raise_if_interrupted(self) -> None:
        if self._stopping or self._paused or self._disabled:
            raise Interrupted

    # Control (pause, resume, disable, queued work) and lag -----------------------

    def _apply_control(self, paused: bool, disabled: str | None) -> None:
        self._paused, self._disabled = paused, disabled
        if paused or disabled or self._stopping:
            self._wake.set()
            self.stats.state = "disabled" if disabled else "paused" if paused else self.stats.state
        else:
            self._wake.clear()

    async def _watch_control(self) -> None:
        while True:
            try:
                current = await self.state.state(self.name)
                if current is not None:
                    self._apply_control(current.paused, current.disabled_reason)
                    self._retries_pending = current.retries_pending
                    self._replays_pending = current.replays_pending
                    self.stats.dead_letters_waiting = current.dead_letters
                await self._measure_lag()
            except (StoreUnavailable, SinkStateUnavailable) as error:
                log.warning("sink %s: cannot read its state: %s", self.name, error)
            await asyncio.sleep(self.control_interval)

    async def _measure_lag(self) -> None:
        finished = self._watermark.value if self._watermark is not None else self._read_after
        self._head = await head_seq(self.events_log, known=max(self._head, finished))
        self.stats.lag_events = max(self._head - finished, 0)
        if self.stats.lag_events == 0:
            self.stats.lag_seconds = 0.0
            return
        oldest = await self.events_log.events(EventFilter(after_seq=finished, limit=1))
        if oldest:
            age = datetime.now(UTC) - oldest[0].received_at
            self.stats.lag_seconds = max(age.total_seconds(), 0.0)

    # Work -----------------------------------------------------------------------

    async def _work_once(self) -> bool:
        worked = False
        if self._retries_pending:
            worked = await self._retry_dead_letters()
        if self._replays_pending:
            worked = await self._replay_page() or worked
        page = await self.events_log.events(
            EventFilter(after_seq=self._read_after, limit=self.page_size)
        )
        if not page:
            return worked
        matching = [event for event in page if self.config.filter.matches(event)]
        watermark = self._watermark = Watermark(matching, page[-1].seq)
        if len(page) < self.page_size:
            self._head = max(self._head, page[-1].seq)

        async def done(event: Event, failure: Failure | None) -> None:
            if failure is not None:
                await self._dead_letter(event, failure)
            else:
                self._uncommitted_delivered += 1
            watermark.finish(event.seq)
            self._commit_wanted.set()

        await self._deliver(matching, done)
        self._read_after = page[-1].seq
        self._watermark = None
        self._commit_wanted.set()
        return True

    async def _retry_dead_letters(self) -> bool:
        letters = await self.state.dead_letters(self.name, state="retry", limit=self.page_size)
        if not letters:
            self._retries_pending = 0
            return False
        by_event = {id(letter.event): letter for letter in letters}

        async def done(event: Event, failure: Failure | None) -> None:
            letter = by_event[id(event)]
            if failure is None:
                await self.state.resolve_dead_letter(letter.id)
                await self.state.count_delivered(self.name, 1, datetime.now(UTC))
            else:
                await self.state.fail_dead_letter(letter.id, failure.error, failure.attempts)
                self.stats.dead_lettered += 1

        await self._deliver([letter.event for letter in letters], done)
        return True

    async def _replay_page(self) -> bool:
        jobs = await self.state.replays(self.name)
        if not jobs:
            self._replays_pending = 0
            return False
        job = jobs[0]
        page = await self.events_log.events(
            EventFilter(after_seq=job.after_seq, limit=self.page_size)
        )
        page = [event for event in page if event.seq <= job.until_seq]
        if not page:
            await self.state.advance_replay(job.id, job.until_seq)
            return True
        delivered = 0

        async def done(event: Event, failure: Failure | None) -> None:
            nonlocal delivered
            if failure is not None:
                await self._dead_letter(event, failure)
            else:
                delivered += 1

        await self._deliver([event for event in page if self.config.filter.matches(event)], done)
        if delivered:
            await self.state.count_delivered(self.name, delivered, datetime.now(UTC))
        end = page[-1].seq if len(page) == self.page_size else job.until_seq
        await self.state.advance_replay(job.id, end)
        return True

    async def _dead_letter(self, event: Event, failure: Failure) -> None:
        await self.state.add_dead_letter(self.name, event, failure.error, failure.attempts)
        self.stats.dead_lettered += 1
        self.stats.dead_letters_waiting += 1
        log.warning(
            "sink %s: event %s (seq %d) is a dead letter after %d attempt(s): %s",
            self.name,
            event.id,
            event.seq,
            failure.attempts,
            failure.error,
        )

    # Delivery -------------------------------------------------------------------

    async def _deliver(self, events: Sequence[Event], done: OnDone) -> None:
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
        retry = self.config.retry
        attempts = 0
        unavailable = 0
        first_failure: float | None = None
        while True:
            self._raise_if_interrupted()
            try:
                async with asyncio.timeout(self.config.timeout * 1.5 + 1.0):
                    await self.sink.deliver(chunk)
            except SinkUnavailable as error:
                unavailable += 1
                self._note_unavailable(error)
                await self._record_error(self._describe(error))
                delay = self._delay(unavailable, error.retry_after)
            except SinkGone as error:
                await self._stop_sink(self._describe(error), disable=True)
                raise Interrupted from None
            except SinkPaused as error:
                await self._stop_sink(self._describe(error), disable=False)
                raise Interrupted from None
            except Exception as error:
                text = self._describe(error)
                attempts += 1
                self.stats.failed_attempts += 1
                self.stats.state = "retrying"
                await self._record_error(text)
                now = time.monotonic()
                first_failure = first_failure if first_failure is not None else now
                too_old = retry.max_age > 0 and now - first_failure >= retry.max_age
                if isinstance(error, DeliveryRejected) or attempts >= retry.max_attempts or too_old:
                    return Failure(text, attempts)
                retry_after = error.retry_after if isinstance(error, DeliveryError) else None
                delay = self._delay(attempts, retry_after)
            else:
                self.stats.delivered += len(chunk)
                self.stats.state = "running"
                self._last_delivered_at = datetime.now(UTC)
                return None
            await self._sleep_or_interrupt(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        retry = self.config.retry
        return retry_delay(
            attempt,
            initial=retry.initial,
            maximum=retry.max,
            factor=retry.factor,
            retry_after=retry_after,
            uniform=self.uniform,
        )

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, DeliveryError):
            text = error.detail
        elif isinstance(error, TimeoutError):
            text = f"no answer within {self.config.timeout:g}s"
        else:
            text = f"{type(error).__name__}: {error}"
        return redact_text(text, self._secrets)[:MAX_ERROR_TEXT]

    def _note_unavailable(self, error: SinkUnavailable) -> None:
        self.stats.state = "down"
        now = time.monotonic()
        if now - self._unavailable_logged >= UNAVAILABLE_LOG_INTERVAL:
            self._unavailable_logged = now
            log.warning("sink %s is unavailable: %s", self.name, self._describe(error))

    async def _record_error(self, text: str) -> None:
        self.stats.last_error = text
        now = time.monotonic()
        if self._recorded_error is not None:
            last_text, at = self._recorded_error
            if last_text == text and now - at < ERROR_RECORD_INTERVAL:
                return
        self._recorded_error = (text, now)
        try:
            await self.state.record_error(self.name, text, datetime.now(UTC))
        except SinkStateUnavailable as error:
            log.warning("sink %s: cannot record its last error: %s", self.name, error)

    async def _stop_sink(self, reason: str, *, disable: bool) -> None:
        if disable:
            log.error("sink %s is disabled until 'dlrhub sinks resume': %s", self.name, reason)
            await self.state.disable(self.name, reason)
            self._apply_control(self._paused, reason)
        else:
            log.error("sink %s is paused until 'dlrhub sinks resume': %s", self.name, reason)
            await self.state.set_paused(self.name, True)
            self._apply_control(True, self._disabled)
        await self._record_error(reason)

    # Cursor ---------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while not self._closing:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            try:
                await self._commit()
            except SinkStateUnavailable as error:
                log.warning("sink %s: cannot commit its cursor: %s", self.name, error)
                if self._closing:
                    return
                await asyncio.sleep(1.0)
                self._commit_wanted.set()

    async def _commit(self) -> None:
        async with self._commit_lock:
            target = self._watermark.value if self._watermark is not None else self._read_after
            delivered = self._uncommitted_delivered
            if target <= self._committed and not delivered:
                return
            await self.state.advance(
                self.name, target, delivered=delivered, delivered_at=self._last_delivered_at
            )
            self._committed = max(self._committed, target)
            self._uncommitted_delivered -= delivered
            self.stats.after_seq = self._committed


async def head_seq(store: Store, known: int = 0) -> int:
    """The highest seq in the log; `known` is a seq known to exist (or 0).

    Sequence numbers are dense (the store allocates them without gaps), so
    "is there an event after x" answers "x < head": an exponential then a
    binary search, each probe one index lookup.
    """

    async def exists_after(seq: int) -> bool:
        return bool(await store.events(EventFilter(after_seq=seq, limit=1)))

    low = known
    if not await exists_after(low):
        return low
    step = 1
    high = low + step
    while await exists_after(high):
        low = high
        step *= 2
        high = low + step
    # low < head <= high
    while high - low > 1:
        middle = (low + high) // 2
        if await exists_after(middle):
            low = middle
        else:
            high = middle
    return high
