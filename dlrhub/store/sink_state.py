"""Durable state of the fan-out: per-sink cursors, control flags, dead letters, replays.

The interface the sink engine and the `dlrhub sinks|dlq|replay` commands use;
`sink_state_sql.SQLSinkState` is its one implementation, on the store's
database (SQLite file or PostgreSQL schema), beside the event log.

Several workers on one PostgreSQL database each deliver the sinks they hold a
lease for (`sink_leases.py`). The writes that say how far a sink is (cursor,
dead letters, replay progress, retry counts) take a `Fence`: they land only
while the writer still holds the lease with that token, and raise `LeaseLost`
otherwise, so a worker that lost its lease can never move a cursor.

Each attempt at delivering an event is kept as a `DeliveryAttempt` row (when,
which attempt, the outcome, the sink's answer), for the message's page; the
rows of events the retention pruned go with them.

Losing a write of this state (a crash between a delivery and the commit of its
cursor) can only cause a redelivery, never a loss: the cursor is always behind
or at what the sink acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import msgspec

from dlrhub.event import Event, format_time

DeadLetterState = Literal["dead", "retry"]
# As the engine's log lines say them (`dlrhub/sinks/delivery.py`).
AttemptOutcome = Literal["delivered", "retrying", "given_up", "unavailable"]


class SinkStateUnavailable(Exception):
    """The sink state cannot be read or written right now; try again later."""


class LeaseLost(Exception):
    """A fenced write found another lease: someone else delivers the sink now; stop."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Who writes, with the token of the lease it took; a newer token fences it off."""

    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class RetryCount:
    """Failed attempts at a batch starting at an event, kept so a restart does not reset them."""

    attempts: int
    first_failure: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class SinkState:
    """One sink's durable position in the event log and its control flags."""

    sink: str
    after_seq: int  # every event with seq <= after_seq is delivered, dead-lettered or skipped
    paused: bool
    disabled_reason: str | None
    last_error: str | None
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    delivered: int  # events delivered since the sink was first seen (live + replay + retry)
    dead_letters: int  # dead letters waiting (state dead or retry)
    replays_pending: int
    retries_pending: int
    lease_owner: str | None = None  # the worker delivering it now (a live lease), if any

    def to_dict(self) -> dict[str, object]:
        return {
            "sink": self.sink,
            "after_seq": self.after_seq,
            "paused": self.paused,
            "disabled_reason": self.disabled_reason,
            "last_error": self.last_error,
            "last_error_at": _time(self.last_error_at),
            "last_delivered_at": _time(self.last_delivered_at),
            "delivered": self.delivered,
            "dead_letters": self.dead_letters,
            "replays_pending": self.replays_pending,
            "retries_pending": self.retries_pending,
            "lease_owner": self.lease_owner,
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a sink gave up on, with the last error; `retry` means queued for redelivery."""

    id: int
    sink: str
    event: Event
    error: str
    attempts: int
    state: DeadLetterState
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "sink": self.sink,
            "seq": self.event.seq,
            "event_id": self.event.id,
            "error": self.error,
            "attempts": self.attempts,
            "state": self.state,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }


class DeliveryAttempt(msgspec.Struct, frozen=True, gc=False):
    """One attempt of a sink at delivering one event (a batch's attempt: a row per event).

    `answer` is the sink's error text, redacted and capped like the last error
    (`dlrhub/sinks/last_error.py`); None when the sink acknowledged. A msgspec
    `Struct`, not a frozen dataclass: one is made per event delivered, and a
    frozen dataclass costs ten times as much to make (4 us against 0.4).
    """

    sink: str
    seq: int
    event_id: str
    attempt: int  # 1 for the first try; a restart or takeover goes on counting
    at: datetime  # when the attempt started
    outcome: AttemptOutcome
    duration_ms: float | None
    answer: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "sink": self.sink,
            "seq": self.seq,
            "event_id": self.event_id,
            "attempt": self.attempt,
            "at": format_time(self.at),
            "outcome": self.outcome,
            "duration_ms": self.duration_ms,
            "answer": self.answer,
        }


@dataclass(frozen=True, slots=True)
class ReplayJob:
    """Re-deliver the events with `after_seq < seq <= until_seq` (progress kept in after_seq)."""

    id: int
    sink: str
    after_seq: int
    until_seq: int


class SinkStateStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure(self, sink: str, *, start_after: int) -> SinkState:
        """The sink's state, created at `start_after` the first time a sink is seen."""
        ...

    async def state(self, sink: str) -> SinkState | None: ...

    async def states(self) -> list[SinkState]: ...

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
        """Move the cursor forward (never back), add to the delivered count and record
        `attempts`, in one transaction."""
        ...

    async def count_delivered(
        self, sink: str, delivered: int, delivered_at: datetime, *, fence: Fence | None = None
    ) -> None:
        """Add deliveries that do not move the cursor (replays, dead-letter retries)."""
        ...

    async def set_paused(self, sink: str, paused: bool) -> None:
        """Pause or resume; resuming also re-enables a sink disabled by its endpoint."""
        ...

    async def disable(self, sink: str, reason: str) -> None: ...

    async def record_error(self, sink: str, error: str, at: datetime) -> None: ...

    async def add_dead_letter(
        self, sink: str, event: Event, error: str, attempts: int, *, fence: Fence | None = None
    ) -> int: ...

    async def dead_letters(
        self,
        sink: str,
        *,
        state: DeadLetterState | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]: ...

    async def request_retry(self, sink: str, ids: list[int] | None) -> int:
        """Queue dead letters (all of the sink's if `ids` is None) for redelivery."""
        ...

    async def resolve_dead_letter(self, dead_letter_id: int, *, fence: Fence | None = None) -> None:
        """A queued dead letter was delivered: forget it."""
        ...

    async def fail_dead_letter(
        self, dead_letter_id: int, error: str, attempts: int, *, fence: Fence | None = None
    ) -> None:
        """A queued dead letter failed again: back to `dead` with the new error."""
        ...

    async def drop_dead_letters(self, sink: str, ids: list[int] | None) -> int: ...

    async def add_replay(self, sink: str, after_seq: int, until_seq: int) -> ReplayJob: ...

    async def replays(self, sink: str) -> list[ReplayJob]: ...

    async def advance_replay(
        self, job_id: int, after_seq: int, *, fence: Fence | None = None
    ) -> None:
        """Record progress; the job is removed once after_seq reaches until_seq."""
        ...

    async def retry_counts(self, sink: str) -> dict[int, RetryCount]:
        """The failed attempts kept for the sink, by the seq of the batch's first event."""
        ...

    async def save_retry_count(
        self, sink: str, seq: int, count: RetryCount, *, fence: Fence | None = None
    ) -> None: ...

    async def forget_retry_count(self, sink: str, seq: int, *, fence: Fence | None = None) -> None:
        """The batch was delivered or given up: its count is done with."""
        ...

    async def record_attempts(
        self, rows: Sequence[DeliveryAttempt], *, fence: Fence | None = None
    ) -> None:
        """Keep delivery attempts, in one transaction; none if `fence` no longer holds."""
        ...

    async def delivery_attempts(self, event_ids: Sequence[str]) -> list[DeliveryAttempt]:
        """The attempts kept for these events, every sink's, in the order they were made."""
        ...


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None
