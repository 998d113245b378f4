"""When a batch is tried again, and when it is given up to the dead letters.

Only failures the sink answered count towards `max_attempts` and `max_age`
(see the table in `base.py`): a sink that is down is waited for as long as it
is down, with a backoff of its own. A rejected batch is given up at once. How
long each wait is comes from `backoff.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dlrhub.sinks.backoff import retry_delay
from dlrhub.sinks.base import DeliveryError, DeliveryRejected
from dlrhub.sinks.settings import RetryPolicy


class Retries:
    """The retries of one batch, from its first attempt until it is acknowledged or given up."""

    def __init__(
        self,
        policy: RetryPolicy,
        uniform: Callable[[float, float], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.uniform = uniform
        self.clock = clock
        self.attempts = 0
        self._unavailable = 0
        self._first_failure: float | None = None

    def after_unavailable(self, retry_after: float | None) -> float:
        """Seconds to wait for a sink that is down; this never counts as an attempt."""
        self._unavailable += 1
        return self._delay(self._unavailable, retry_after)

    def after_failure(self, error: Exception) -> float | None:
        """Seconds to wait before the next attempt, or None: give the batch up."""
        self.attempts += 1
        now = self.clock()
        first_failure = self._first_failure = (
            self._first_failure if self._first_failure is not None else now
        )
        policy = self.policy
        too_old = policy.max_age > 0 and now - first_failure >= policy.max_age
        if isinstance(error, DeliveryRejected) or self.attempts >= policy.max_attempts or too_old:
            return None
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        return self._delay(self.attempts, retry_after)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        return retry_delay(
            attempt,
            initial=self.policy.initial,
            maximum=self.policy.max,
            factor=self.policy.factor,
            retry_after=retry_after,
            uniform=self.uniform,
        )
