"""Where a runner's work comes from, and where the events it gives up go.

A runner takes its work in this order, every round:

| source              | queued by           | done when                                     |
|---------------------|---------------------|-----------------------------------------------|
| `DeadLetterRetries` | `dlrhub dlq retry`  | each letter is resolved, or failed again      |
| `Replays`           | `dlrhub replay`     | the job's range is re-delivered; no cursor    |
| `NewEvents`         | the receiver        | the cursor moves past the page                |

Retries and replays are counted in the sink state; the runner reads those
counts every control interval and asks the store for them only when pending.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dlrhub.event import Event
from dlrhub.sinks.cursor import Cursor
from dlrhub.sinks.delivery import Delivery, Failure
from dlrhub.sinks.lag import Lag
from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.sinks.settings import SinkConfig
from dlrhub.store.base import EventFilter, Store
from dlrhub.store.sink_state import SinkStateStore


class DeadLetters:
    """Puts a given-up event in the dead-letter table, counts it and says so."""

    def __init__(self, name: str, state: SinkStateStore, stats: SinkStats) -> None:
        self.name = name
        self.state = state
        self.stats = stats

    async def add(self, event: Event, failure: Failure) -> None:
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


class NewEvents:
    """The log after the cursor: one page per round, the cursor moves as it is finished."""

    def __init__(
        self,
        config: SinkConfig,
        events_log: Store,
        page_size: int,
        delivery: Delivery,
        cursor: Cursor,
        lag: Lag,
        dead_letters: DeadLetters,
    ) -> None:
        self.config = config
        self.events_log = events_log
        self.page_size = page_size
        self.delivery = delivery
        self.cursor = cursor
        self.lag = lag
        self.dead_letters = dead_letters

    async def work_once(self) -> bool:
        """Deliver the next page of the log; False if there was none."""
        page = await self.events_log.events(
            EventFilter(after_seq=self.cursor.read_after, limit=self.page_size)
        )
        if not page:
            return False
        matching = [event for event in page if self.config.filter.matches(event)]
        watermark = self.cursor.open_page(matching, page[-1].seq)
        if len(page) < self.page_size:
            self.lag.note_head(page[-1].seq)

        async def done(event: Event, failure: Failure | None) -> None:
            if failure is not None:
                await self.dead_letters.add(event, failure)
            self.cursor.finish(watermark, event.seq, delivered=failure is None)

        await self.delivery.deliver(matching, done)
        self.cursor.close_page(page[-1].seq)
        return True


class Replays:
    """Replay jobs, oldest first, a page per round; the live cursor does not move."""

    def __init__(
        self,
        config: SinkConfig,
        events_log: Store,
        state: SinkStateStore,
        page_size: int,
        delivery: Delivery,
        dead_letters: DeadLetters,
    ) -> None:
        self.config = config
        self.events_log = events_log
        self.state = state
        self.page_size = page_size
        self.delivery = delivery
        self.dead_letters = dead_letters
        self.pending = 0  # jobs queued, as the sink state last said

    async def work_once(self) -> bool:
        """Re-deliver the next page of the oldest job; False if no job was left."""
        name = self.config.name
        jobs = await self.state.replays(name)
        if not jobs:
            self.pending = 0
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
                await self.dead_letters.add(event, failure)
            else:
                delivered += 1

        matching = [event for event in page if self.config.filter.matches(event)]
        await self.delivery.deliver(matching, done)
        if delivered:
            await self.state.count_delivered(name, delivered, datetime.now(UTC))
        end = page[-1].seq if len(page) == self.page_size else job.until_seq
        await self.state.advance_replay(job.id, end)
        return True


class DeadLetterRetries:
    """Dead letters an operator queued for another try; a letter that fails again stays."""

    def __init__(
        self,
        name: str,
        state: SinkStateStore,
        page_size: int,
        delivery: Delivery,
        stats: SinkStats,
    ) -> None:
        self.name = name
        self.state = state
        self.page_size = page_size
        self.delivery = delivery
        self.stats = stats
        self.pending = 0  # letters queued, as the sink state last said

    async def work_once(self) -> bool:
        """Try a page of the queued letters again; False if none was queued."""
        letters = await self.state.dead_letters(self.name, state="retry", limit=self.page_size)
        if not letters:
            self.pending = 0
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

        await self.delivery.deliver([letter.event for letter in letters], done)
        return True
