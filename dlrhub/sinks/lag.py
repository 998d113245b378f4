"""How far behind the log a sink is, and where the log ends.

Lag is measured every control interval for the metrics page, so finding the
head of the log must stay cheap on a large log: `head_seq` does it with a few
index lookups instead of a count.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dlrhub.sinks.reporting import SinkStats
from dlrhub.store.base import EventFilter, Store


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


class Lag:
    """The sink's lag in events and in seconds, written to its stats."""

    def __init__(self, events_log: Store, stats: SinkStats) -> None:
        self.events_log = events_log
        self.stats = stats
        self._head = 0  # a seq known to exist: the search for the head starts there

    def note_head(self, seq: int) -> None:
        """A page shorter than asked for ended at `seq`: that is the head, for now."""
        self._head = max(self._head, seq)

    async def measure(self, finished: int) -> None:
        """Measure how far the log goes past `finished`, and how old its first event there is."""
        self._head = await head_seq(self.events_log, known=max(self._head, finished))
        self.stats.lag_events = max(self._head - finished, 0)
        if self.stats.lag_events == 0:
            self.stats.lag_seconds = 0.0
            return
        oldest = await self.events_log.events(EventFilter(after_seq=finished, limit=1))
        if oldest:
            age = datetime.now(UTC) - oldest[0].received_at
            self.stats.lag_seconds = max(age.total_seconds(), 0.0)
