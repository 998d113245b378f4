"""The delivery engine: one `SinkRunner` per configured sink.

A runner reads the event log in pages after its durable cursor, keeps the
events its filter matches and hands them to the sink in batches; besides the
live cursor it works off dead letters queued by `dlrhub dlq retry` and replay
jobs queued by `dlrhub replay`. Pause, disable and stop interrupt waiting and
take effect before the next attempt. The runner itself only starts, stops and
restarts; each job is a piece of its own:

| piece                  | module          | job                                                |
|------------------------|-----------------|----------------------------------------------------|
| `Control`              | `control.py`    | stop, pause, disable; cut waits short              |
| `Cursor`               | `cursor.py`     | the finished prefix of the log, committed durably  |
| `AttemptLog`           | `attempts.py`   | each attempt's rows, written with the cursor       |
| `Delivery`             | `delivery.py`   | lanes, batches, attempts                           |
| `Retries`,             | `retry.py`      | when to try again, when to give up (`backoff.py`); |
| `RetryCounts`          |                 | failed attempts kept across restarts               |
| `LastError`            | `last_error.py` | redacted error texts, recorded at a bounded rate   |
| `Lag`                  | `lag.py`        | how far behind the log the sink is                 |
| `NewEvents`, `Replays`,| `work.py`       | the three sources of work, and the dead letters    |
| `DeadLetterRetries`    |                 |                                                    |
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from dlrhub.sinks.base import Sink
from dlrhub.sinks.control import Control, Interrupted
from dlrhub.sinks.cursor import Cursor
from dlrhub.sinks.delivery import Delivery
from dlrhub.sinks.lag import Lag, head_seq
from dlrhub.sinks.last_error import LastError
from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.sinks.retry import RetryCounts
from dlrhub.sinks.settings import SinkConfig
from dlrhub.sinks.work import DeadLetterRetries, DeadLetters, NewEvents, Replays
from dlrhub.store.base import Store, StoreUnavailable
from dlrhub.store.sink_state import LeaseLost, SinkStateStore, SinkStateUnavailable

MIN_PAGE = 200
MAX_PAGE = 5000


class SinkRunner:
    """Runs one sink from start to stop, restarting it after an unexpected error."""

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
        self.stats = SinkStats()
        self.page_size = min(max(config.batch_size * config.max_in_flight * 4, MIN_PAGE), MAX_PAGE)
        name = config.name
        self.control = Control(name, state, self.stats)
        self.cursor = Cursor(name, state, self.stats, record_attempts=config.record_attempts)
        self.lag = Lag(log_store, self.stats)
        self.retry_counts = RetryCounts(name, state)
        delivery = Delivery(
            config,
            sink,
            self.control,
            LastError(config, state, self.stats),
            self.stats,
            self.retry_counts,
            self.cursor.attempts,
            on_delivered=self.cursor.note_delivered,
            uniform=uniform,
        )
        dead_letters = DeadLetters(name, state, self.stats)
        self.new_events = NewEvents(
            config, log_store, self.page_size, delivery, self.cursor, self.lag, dead_letters
        )
        self.replays = Replays(config, log_store, state, self.page_size, delivery, dead_letters)
        self.dead_letter_retries = DeadLetterRetries(
            name, state, self.page_size, delivery, self.stats
        )

    @property
    def name(self) -> str:
        return self.config.name

    def stop(self) -> None:
        self.control.stop()

    async def run(self) -> None:
        """Deliver until `stop()`; an unexpected error restarts the runner after a pause."""
        while not self.control.stopping:
            try:
                await self._run_once()
            except LeaseLost:
                break  # another worker delivers the sink now (`leases.py`)
            except Exception:
                log.exception("sink %s: the runner failed; restarting in 5s", self.name)
                self.stats.state = "down"
                await self.control.idle(5.0)
        self.stats.state = "stopped"

    async def _run_once(self) -> None:
        start_after = 0
        if self.config.start == "end":
            start_after = await head_seq(self.events_log)
        current = await self.state.ensure(self.name, start_after=start_after)
        self.cursor.reset(current.after_seq)
        await self.retry_counts.load()
        self.control.apply(current.paused, current.disabled_reason)
        await self.sink.open()
        watcher = asyncio.create_task(self._watch_control(), name=f"dlrhub-sink-{self.name}-ctl")
        committer = asyncio.create_task(
            self.cursor.keep_committing(), name=f"dlrhub-sink-{self.name}-cmt"
        )
        try:
            while not self.control.stopping:
                if self.control.held:
                    await self.control.wait_while_held(self.control_interval)
                    continue
                if self.stats.state in ("starting", "paused", "disabled"):
                    self.stats.state = "running"
                try:
                    worked = await self._work_once()
                except Interrupted:
                    self.cursor.rewind()
                    continue
                except (StoreUnavailable, SinkStateUnavailable) as error:
                    log.warning("sink %s: %s; retrying in 1s", self.name, error)
                    self.cursor.rewind()
                    await self.control.idle(1.0)
                    continue
                if not worked:
                    await self.control.wait_for_work(self.poll_interval)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # Not cancelled mid-commit: a cancelled commit may have landed anyway,
            # and its delivered count would then be added twice.
            self.cursor.stop_committing()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            try:
                await self.cursor.commit()
            except LeaseLost:
                pass  # what this run finished is re-delivered by the next holder
            except SinkStateUnavailable as error:
                log.warning(
                    "sink %s: cannot commit its cursor on the way out: %s", self.name, error
                )
            await self.sink.close()

    async def _work_once(self) -> bool:
        """One round: queued dead-letter retries, then a replay page, then new events."""
        worked = False
        if self.dead_letter_retries.pending:
            worked = await self.dead_letter_retries.work_once()
        if self.replays.pending:
            worked = await self.replays.work_once() or worked
        return await self.new_events.work_once() or worked

    async def _watch_control(self) -> None:
        """Follow the sink state (pause, disable, queued work) and measure lag, every interval."""
        while True:
            try:
                current = await self.state.state(self.name)
                if current is not None:
                    self.control.apply(current.paused, current.disabled_reason)
                    self.dead_letter_retries.pending = current.retries_pending
                    self.replays.pending = current.replays_pending
                    self.stats.dead_letters_waiting = current.dead_letters
                await self.lag.measure(self.cursor.finished)
            except (StoreUnavailable, SinkStateUnavailable) as error:
                log.warning("sink %s: cannot read its state: %s", self.name, error)
            await asyncio.sleep(self.control_interval)
