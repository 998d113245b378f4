"""Failed sign-ins are limited per client address: `LIMIT` failures within
`WINDOW` seconds, then every attempt from that address is refused (429) until the
window has passed. Kept in each receiver process (with `server.processes = N`, an
address gets up to N times the limit); the table is bounded, oldest dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict

LIMIT = 5
WINDOW = 60.0
MAX_ADDRESSES = 10_000


class SignInLimit:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, address: str, now: float | None = None) -> float:
        """Seconds until `address` may try again (0 when it may now)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(address, []) if now - t < self.window]
        if len(recent) < self.limit:
            return 0.0
        return self.window - (now - recent[-self.limit])

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.pop(address, []) if now - t < self.window]
        self._failures[address] = [*recent, now][-self.limit :]
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
