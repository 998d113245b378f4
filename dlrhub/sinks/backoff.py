"""How long to wait before the next attempt: exponential backoff with full jitter.

Full jitter (a uniformly random wait between 0 and the exponential ceiling)
spreads the retries of many sinks and lanes so that a recovering endpoint is
not hit by all of them at once. A `Retry-After` from the sink is a floor: we
never come back sooner than asked, but at most `MAX_RETRY_AFTER` later.
"""

from __future__ import annotations

import random
from collections.abc import Callable

MAX_RETRY_AFTER = 3600.0


def retry_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    factor: float,
    retry_after: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the `attempt`-th failure (1 for the first)."""
    exponent = min(max(attempt - 1, 0), 64)
    ceiling = min(maximum, initial * factor**exponent)
    delay = uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay
