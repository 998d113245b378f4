"""An account's `rate_limit`: requests per second to its provider, spaced 1/rate apart.

Strict spacing (a bucket of one) rather than bursts: any one-second window then
holds at most `rate` request starts, which is what a provider's limit usually
means. Every HTTP request to the provider takes a turn here first (`Transport`
does it): sends, status queries, token logins, and each automatic retry.

With a `budget` (the tracking store, `dlrhub.store.tracking.RequestBudget`) the
turns are reserved in the store, so the limit holds for every process sharing
it together (the API's sends, `dlrhub send`, several `dlrhub poll`); the cost
is one short write transaction per request. Without one, the turns are this
process's alone.

A request that wakes more than half an interval after its turn (its process
stalled) takes a new turn instead, up to `MAX_RETAKES` times: otherwise the
requests that stalled together would leave together.

A reservation in the store takes a round trip (about 3 ms to a loaded
PostgreSQL), which at 200 requests/s is more than half an interval: a turn
reserved for "now" was already late when the answer came, and was thrown away
for another. So turns are reserved that far ahead: at the time the reservation
is expected to have returned (`_latency`, the reservations' smoothed duration).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dlrhub.store.tracking import RequestBudget

# How many new turns a request woken too late for its turn takes before it goes anyway.
MAX_RETAKES = 4
LATENCY_WEIGHT = 0.2  # of the latest reservation in the smoothed duration
MAX_LATENCY = 0.5  # seconds: a store that slow is stalled, not a round trip to plan for


class RateLimiter:
    def __init__(
        self,
        rate: float,
        account: str = "",
        budget: RequestBudget | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.account = account
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._latency = 0.0

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        if self.interval == 0:
            return
        for _ in range(1 + MAX_RETAKES):
            asked = self.clock()
            start = await self._reserve(asked + self._latency)
            now = self.clock()
            took = min(max(now - asked, 0.0), MAX_LATENCY)
            self._latency += LATENCY_WEIGHT * (took - self._latency)
            if start > now:
                await self.sleep(start - now)
                now = self.clock()
            if now - start <= self.interval / 2:
                return
            # Woken late (a stalled event loop, a busy machine): requests whose turns
            # came later may be leaving now too, so this one takes a new turn.

    async def _reserve(self, now: float) -> float:
        if self.budget is not None:
            return await self.budget.reserve_request(self.account, self.interval, now)
        start = max(now, self._next)
        self._next = start + self.interval
        return start

    async def defer(self, until: float) -> None:
        """No request starts before `until` (seconds since the epoch), here or elsewhere."""
        if self.budget is not None:
            await self.budget.defer_requests(self.account, until)
        else:
            self._next = max(self._next, until)
