"""The sink's durable cursor: how far the log is finished, and committing that.

The cursor moves only over events that are acknowledged, dead-lettered or
filtered out, and only as a contiguous prefix of the log (a `Watermark`),
because lanes finish out of order. A background task commits it as soon as
the previous commit is done, so a crash re-delivers at most what was in
flight, and a slow state store never holds up delivery. The same commit
writes the delivery attempts gathered meanwhile (`attempts.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from dlrhub.event import Event
from dlrhub.sinks.attempts import AttemptLog
from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.store.sink_state import LeaseLost, SinkStateStore, SinkStateUnavailable


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


class Cursor:
    """Where the runner reads the log from, what of it is finished, and what is committed."""

    def __init__(
        self, name: str, state: SinkStateStore, stats: SinkStats, *, record_attempts: bool = True
    ) -> None:
        self.name = name
        self.state = state
        self.stats = stats
        self.read_after = 0
        self._watermark: Watermark | None = None
        self._committed = 0
        # Both survive a restart of the runner: they are owed to the next commit.
        self._uncommitted_delivered = 0
        self._last_delivered_at: datetime | None = None
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._closing = False
        self.attempts = AttemptLog(name, enabled=record_attempts, wake=self._commit_wanted.set)

    def reset(self, after_seq: int) -> None:
        """Start (again) from the cursor the state store holds."""
        self._committed = self.read_after = self.stats.after_seq = after_seq
        self._watermark = None
        self._closing = False

    @property
    def finished(self) -> int:
        """The seq up to which every event of the log is finished."""
        return self._watermark.value if self._watermark is not None else self.read_after

    def open_page(self, matching: Sequence[Event], page_end: int) -> Watermark:
        """Track a page being delivered; the events it filtered out are finished already."""
        self._watermark = Watermark(matching, page_end)
        return self._watermark

    def finish(self, watermark: Watermark, seq: int, *, delivered: bool) -> None:
        """An event of the page is acknowledged (`delivered`) or dead-lettered."""
        if delivered:
            self._uncommitted_delivered += 1
        watermark.finish(seq)
        self._commit_wanted.set()

    def close_page(self, page_end: int) -> None:
        """Every event of the page is finished: read on after it."""
        self.read_after = page_end
        self._watermark = None
        self._commit_wanted.set()

    def rewind(self) -> None:
        """After an interrupted page, read again from what is durably finished."""
        if self._watermark is not None:
            self.read_after = self._watermark.value
            self._watermark = None
        self._commit_wanted.set()

    def note_delivered(self, at: datetime) -> None:
        """The sink acknowledged something at `at`; the next commit records it."""
        self._last_delivered_at = at

    async def keep_committing(self) -> None:
        """Commit whenever asked to, until `stop_committing()`; a failed commit is retried."""
        while not self._closing:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            try:
                await self.commit()
            except LeaseLost:
                return  # another worker delivers the sink now; the runner is being stopped
            except SinkStateUnavailable as error:
                log.warning("sink %s: cannot commit its cursor: %s", self.name, error)
                if self._closing:
                    return
                await asyncio.sleep(1.0)
                self._commit_wanted.set()

    def stop_committing(self) -> None:
        """Let `keep_committing()` finish the commit under way and return."""
        self._closing = True
        self._commit_wanted.set()

    async def commit(self) -> None:
        async with self._commit_lock:
            target = self.finished
            delivered = self._uncommitted_delivered
            attempts = self.attempts.take()
            try:
                if target <= self._committed and not delivered:
                    if attempts:
                        await self.state.record_attempts(attempts)
                    return
                await self.state.advance(
                    self.name,
                    target,
                    delivered=delivered,
                    delivered_at=self._last_delivered_at,
                    attempts=attempts,
                )
            except SinkStateUnavailable:
                self.attempts.put_back(attempts)  # a lost lease drops them: see attempts.py
                raise
            self._committed = max(self._committed, target)
            self._uncommitted_delivered -= delivered
            self.stats.after_seq = self._committed
