"""When a batch is tried again, and when it is given up to the dead letters.

Only failures the sink answered count towards `max_attempts` and `max_age`
(see the table in `base.py`): a sink that is down is waited for as long as it
is down, with a backoff of its own. A rejected batch is given up at once. How
long each wait is comes from `backoff.py`.

The count and the time of the first failure are kept in the sink state
(`RetryCounts`, by the seq of the batch's first event), so a worker that
restarts, or takes the sink over from another, continues them: `max_attempts`
and `max_age` hold across restarts. The age is wall-clock time for that reason.
Only failures write there; a delivery that succeeds first time costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dlrhub.sinks.backoff import retry_delay
from dlrhub.sinks.base import DeliveryError, DeliveryRejected
from dlrhub.sinks.reporting import log
from dlrhub.sinks.settings import RetryPolicy
from dlrhub.store.sink_state import RetryCount, SinkStateStore, SinkStateUnavailable


class Retries:
    """The retries of one batch, from its first attempt until it is acknowledged or given up."""

    def __init__(
        self,
        policy: RetryPolicy,
        uniform: Callable[[float, float], float],
        clock: Callable[[], float] = time.time,
        kept: RetryCount | None = None,
    ) -> None:
        self.policy = policy
        self.uniform = uniform
        self.clock = clock
        self.attempts = kept.attempts if kept is not None else 0
        self._unavailable = 0
        self.first_failure: float | None = kept.first_failure if kept is not None else None

    def after_unavailable(self, retry_after: float | None) -> float:
        """Seconds to wait for a sink that is down; this never counts as an attempt."""
        self._unavailable += 1
        return self._delay(self._unavailable, retry_after)

    def after_failure(self, error: Exception) -> float | None:
        """Seconds to wait before the next attempt, or None: give the batch up."""
        self.attempts += 1
        now = self.clock()
        first_failure = self.first_failure = (
            self.first_failure if self.first_failure is not None else now
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


class RetryCounts:
    """The failed attempts of a sink's batches, kept in the sink state across restarts."""

    def __init__(self, name: str, state: SinkStateStore) -> None:
        self.name = name
        self.state = state
        self._kept: dict[int, RetryCount] = {}

    async def load(self) -> None:
        """Read what an earlier run (of this worker or another) left."""
        self._kept = await self.state.retry_counts(self.name)

    def retries(
        self, seq: int, policy: RetryPolicy, uniform: Callable[[float, float], float]
    ) -> Retries:
        """The retries of the batch starting at `seq`, continuing a kept count."""
        return Retries(policy, uniform, kept=self._kept.get(seq))

    async def failed(self, seq: int, retries: Retries) -> None:
        assert retries.first_failure is not None
        count = self._kept[seq] = RetryCount(retries.attempts, retries.first_failure)
        try:
            await self.state.save_retry_count(self.name, seq, count)
        except SinkStateUnavailable as error:  # kept in memory; a restart may count afresh
            log.warning("sink %s: cannot keep its retry count: %s", self.name, error)

    async def finished(self, seq: int) -> None:
        """The batch starting at `seq` was delivered or given up."""
        if self._kept.pop(seq, None) is None:
            return
        try:
            await self.state.forget_retry_count(self.name, seq)
        except SinkStateUnavailable as error:  # the cursor's next move deletes it
            log.warning("sink %s: cannot clear its retry count: %s", self.name, error)
