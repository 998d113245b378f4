"""Delivery attempts as rows: gathered as `Delivery` makes them, written by the committer.

Each attempt at a batch gives one `DeliveryAttempt` per event of it (outcomes
as in `delivery.py`'s table), for the message's page of the API. At thousands
of events per second a write per attempt would cost more than the delivery,
so `Delivery` only appends here and the cursor's background committer
(`cursor.py`) writes what gathered: in the transaction that moves the cursor,
or on its own when the cursor did not move (a failure, a replay, a dead-letter
retry). A write that fails is kept for the next one (at most `MAX_PENDING`
rows; beyond that the oldest are dropped, with a warning); a write refused
because the lease went to another worker is dropped: that worker delivers the
events again and records its own attempts.

`record_attempts = false` on a sink keeps none of its attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from dlrhub.event import Event
from dlrhub.sinks.reporting import log
from dlrhub.store.sink_state import AttemptOutcome, DeliveryAttempt

MAX_PENDING = 100_000


class AttemptLog:
    """The attempts made and not yet written; `wake` asks the committer to write them."""

    def __init__(self, name: str, *, enabled: bool, wake: Callable[[], None]) -> None:
        self.name = name
        self.enabled = enabled
        self.wake = wake
        self._pending: list[DeliveryAttempt] = []
        self._dropping = False

    def add(
        self,
        chunk: Sequence[Event],
        attempt: int,
        outcome: AttemptOutcome,
        at: datetime,
        duration_ms: float,
        answer: str | None,
    ) -> None:
        """One attempt at `chunk`: a row per event."""
        if not self.enabled:
            return
        name = self.name
        self._pending.extend(
            DeliveryAttempt(name, event.seq, event.id, attempt, at, outcome, duration_ms, answer)
            for event in chunk
        )
        self._bound()
        self.wake()

    def take(self) -> list[DeliveryAttempt]:
        """The rows to write now (the log is then empty)."""
        rows, self._pending = self._pending, []
        return rows

    def put_back(self, rows: list[DeliveryAttempt]) -> None:
        """A write of `rows` failed: they go before what gathered meanwhile."""
        self._pending[:0] = rows
        self._bound()

    def _bound(self) -> None:
        excess = len(self._pending) - MAX_PENDING
        if excess <= 0:
            self._dropping = False
            return
        del self._pending[:excess]
        if not self._dropping:
            self._dropping = True
            log.warning(
                "sink %s: cannot write its delivery attempts; keeping only the last %d",
                self.name,
                MAX_PENDING,
            )
