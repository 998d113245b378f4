"""The sink state as a runner writes it: every write that says how far it is carries its fence.

A runner delivers a sink only while its worker holds the sink's lease
(`leases.py`). The writes that move the sink on (cursor, delivered counts,
dead letters, replay progress, retry counts, delivery attempts) go through
`FencedSinkState` with the token of that lease; if another worker took the lease meanwhile,
the write lands nowhere, `on_lost` tells the lease keeper at once (which stops
the runner) and the runner gets `LeaseLost`. Reads and operator flags (pause,
disable, last error) are not fenced: they do not say how far the sink is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from dlrhub.event import Event
from dlrhub.store.sink_state import (
    DeadLetter,
    DeadLetterState,
    DeliveryAttempt,
    Fence,
    LeaseLost,
    ReplayJob,
    RetryCount,
    SinkState,
    SinkStateStore,
)

R = TypeVar("R")


class FencedSinkState:
    """`SinkStateStore` whose progress writes hold `fence` (None: unfenced, a lone deliverer)."""

    def __init__(self, state: SinkStateStore, on_lost: Callable[[], None]) -> None:
        self.inner = state
        self.on_lost = on_lost
        self.fence: Fence | None = None

    async def _guard(self, write: Awaitable[R]) -> R:
        try:
            return await write
        except LeaseLost:
            self.on_lost()
            raise

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ensure(self, sink: str, *, start_after: int) -> SinkState:
        return await self.inner.ensure(sink, start_after=start_after)

    async def state(self, sink: str) -> SinkState | None:
        return await self.inner.state(sink)

    async def states(self) -> list[SinkState]:
        return await self.inner.states()

    async def advance(
        self,
        sink: str,
        after_seq: int,
        *,
        delivered: int,
        delivered_at: datetime | None,
        fence: Fence | None = None,
        attempts: Sequence[DeliveryAttempt] = (),
    ) -> None:
        await self._guard(
            self.inner.advance(
                sink,
                after_seq,
                delivered=delivered,
                delivered_at=delivered_at,
                fence=fence or self.fence,
                attempts=attempts,
            )
        )

    async def count_delivered(
        self, sink: str, delivered: int, delivered_at: datetime, *, fence: Fence | None = None
    ) -> None:
        await self._guard(
            self.inner.count_delivered(sink, delivered, delivered_at, fence=fence or self.fence)
        )

    async def set_paused(self, sink: str, paused: bool) -> None:
        await self.inner.set_paused(sink, paused)

    async def disable(self, sink: str, reason: str) -> None:
        await self.inner.disable(sink, reason)

    async def record_error(self, sink: str, error: str, at: datetime) -> None:
        await self.inner.record_error(sink, error, at)

    async def add_dead_letter(
        self, sink: str, event: Event, error: str, attempts: int, *, fence: Fence | None = None
    ) -> int:
        return await self._guard(
            self.inner.add_dead_letter(sink, event, error, attempts, fence=fence or self.fence)
        )

    async def dead_letters(
        self,
        sink: str,
        *,
        state: DeadLetterState | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        return await self.inner.dead_letters(sink, state=state, after_id=after_id, limit=limit)

    async def request_retry(self, sink: str, ids: list[int] | None) -> int:
        return await self.inner.request_retry(sink, ids)

    async def resolve_dead_letter(self, dead_letter_id: int, *, fence: Fence | None = None) -> None:
        await self._guard(self.inner.resolve_dead_letter(dead_letter_id, fence=fence or self.fence))

    async def fail_dead_letter(
        self, dead_letter_id: int, error: str, attempts: int, *, fence: Fence | None = None
    ) -> None:
        await self._guard(
            self.inner.fail_dead_letter(dead_letter_id, error, attempts, fence=fence or self.fence)
        )

    async def drop_dead_letters(self, sink: str, ids: list[int] | None) -> int:
        return await self.inner.drop_dead_letters(sink, ids)

    async def add_replay(self, sink: str, after_seq: int, until_seq: int) -> ReplayJob:
        return await self.inner.add_replay(sink, after_seq, until_seq)

    async def replays(self, sink: str) -> list[ReplayJob]:
        return await self.inner.replays(sink)

    async def advance_replay(
        self, job_id: int, after_seq: int, *, fence: Fence | None = None
    ) -> None:
        await self._guard(self.inner.advance_replay(job_id, after_seq, fence=fence or self.fence))

    async def retry_counts(self, sink: str) -> dict[int, RetryCount]:
        return await self.inner.retry_counts(sink)

    async def save_retry_count(
        self, sink: str, seq: int, count: RetryCount, *, fence: Fence | None = None
    ) -> None:
        await self._guard(self.inner.save_retry_count(sink, seq, count, fence=fence or self.fence))

    async def forget_retry_count(self, sink: str, seq: int, *, fence: Fence | None = None) -> None:
        await self._guard(self.inner.forget_retry_count(sink, seq, fence=fence or self.fence))

    async def record_attempts(
        self, rows: Sequence[DeliveryAttempt], *, fence: Fence | None = None
    ) -> None:
        await self._guard(self.inner.record_attempts(rows, fence=fence or self.fence))

    async def delivery_attempts(self, event_ids: Sequence[str]) -> list[DeliveryAttempt]:
        return await self.inner.delivery_attempts(event_ids)
