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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dlrhub.store.tracking import RequestBudget


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

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        if self.interval == 0:
            return
        now = self.clock()
        if self.budget is not None:
            start = await self.budget.reserve_request(self.account, self.interval, now)
            now = self.clock()
        else:
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await self.sleep(start - now)

    async def defer(self, until: float) -> None:
        """No request starts before `until` (seconds since the epoch), here or elsewhere."""
        if self.budget is not None:
            await self.budget.defer_requests(self.account, until)
        else:
            self._next = max(self._next, until)
