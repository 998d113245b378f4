"""A per-account limit of requests per second: requests are spaced 1/rate apart.

Strict spacing (a bucket of one) rather than bursts: any one-second window
then holds at most `rate` requests started by this process, which is what a
provider's limit usually means.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock = clock
        self._next = 0.0

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        if self.interval == 0:
            return
        now = self.clock()
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)
