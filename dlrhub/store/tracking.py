"""The tracking interface: what dlrhub sent (or was told about) and when to ask again.

One row per message at a provider account, created by a send or by `POST
/v1/tracking`. The poller claims due rows (`next_poll_at <= now`) under a lease,
so two pollers on one store never ask about the same message at once (on
PostgreSQL, any number of them share the due rows with `FOR UPDATE SKIP LOCKED`), and
writes back the outcome and the next time. A row stops being polled for a
recorded reason (`stopped_reason`): `final_status`, `provider_final`,
`max_age`, `unknown_id`, `rejected`, `not_pollable`.

The same store keeps each account's request budget (`RequestBudget`): the
next moment a request to the provider may start. Every process that talks to
an account (senders, pollers, the API) reserves its turn there, so
`rate_limit` holds for all of them together, not per process.

One implementation serves SQLite and PostgreSQL: `dlrhub.store.tracking_sql`
(`open_tracking` picks the backend from `[store]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from dlrhub.event import Status, format_time

STOP_REASONS = (
    "final_status",
    "provider_final",
    "max_age",
    "unknown_id",
    "rejected",
    "not_pollable",
)


@dataclass(frozen=True, slots=True)
class NewTracking:
    """A message to remember; `next_poll_at` None means it is not polled."""

    account: str
    provider: str
    message_id: str
    created_at: datetime
    recipient: str | None = None
    correlation_id: str | None = None
    channel: str = "sms"
    sending_id: str | None = None
    status: Status | None = None
    provider_status: str | None = None
    next_poll_at: datetime | None = None
    stopped_reason: str | None = None


@dataclass(frozen=True, slots=True)
class TrackedMessage:
    id: int
    account: str
    provider: str
    message_id: str
    created_at: datetime
    recipient: str | None
    correlation_id: str | None
    channel: str
    sending_id: str | None
    status: Status | None
    provider_status: str | None
    last_event_at: datetime | None
    next_poll_at: datetime | None
    attempts: int
    misses: int
    stopped_reason: str | None
    stopped_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "account": self.account,
            "provider": self.provider,
            "message_id": self.message_id,
            "recipient": self.recipient,
            "correlation_id": self.correlation_id,
            "channel": self.channel,
            "sending_id": self.sending_id,
            "status": self.status.value if self.status else None,
            "provider_status": self.provider_status,
            "created_at": format_time(self.created_at),
            "next_poll_at": format_time(self.next_poll_at) if self.next_poll_at else None,
            "attempts": self.attempts,
            "stopped_reason": self.stopped_reason,
            "stopped_at": format_time(self.stopped_at) if self.stopped_at else None,
        }


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of a claimed row learned, and when to ask next (None: stop)."""

    id: int
    status: Status | None
    provider_status: str | None
    last_event_at: datetime | None
    attempts: int
    misses: int
    next_poll_at: datetime | None
    stopped_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AccountPause:
    account: str
    reason: str
    paused_at: datetime
    paused_until: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "account": self.account,
            "reason": self.reason,
            "paused_at": format_time(self.paused_at),
            "paused_until": format_time(self.paused_until),
        }


@dataclass(frozen=True, slots=True)
class AccountBadAnswers:
    """Answers of an account's provider that could not be read (broken JSON, HTML)."""

    account: str
    count: int
    last_error: str
    last_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "last_error": self.last_error,
            "last_at": format_time(self.last_at),
        }


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """An account's rows: still polled (`polling`), due now, leased by a poller now
    (`in_flight`: claimed, lease not yet run out), and stopped by reason."""

    account: str
    polling: int = 0
    due: int = 0
    stopped: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0


TrackingState = Literal["active", "stopped"]


@dataclass(frozen=True, slots=True)
class TrackingFilter:
    """Which tracked rows to list, paged by id (`GET /v1/tracking`, the console).

    `state` active: still polled or waiting (no stop reason); stopped: any stop
    reason, or the one `stopped_reason` names. The index `tracked_by_reason`
    (account, stopped_reason, id) serves an account with a state or a reason.
    """

    account: str | None = None
    state: TrackingState | None = None
    stopped_reason: str | None = None
    status: Status | None = None
    after_id: int = 0
    limit: int = 100


class RequestBudget(Protocol):
    """Requests per second to a provider account, shared by every process on the store.

    Strict spacing (a token bucket of one token): each request reserves the
    account's next free start, `interval` seconds after the previous one, and
    waits for it. Any one-second window then holds at most `rate` request
    starts (one more when a window's ends both land on a start), whichever
    process made them.
    """

    async def reserve_request(self, account: str, interval: float, now: float) -> float:
        """Reserve the account's next request start, at or after `now`, and return it.

        Times are seconds since the epoch (`time.time()`), the clock every process
        on the host shares; the following request may start `interval` later.
        """
        ...

    async def defer_requests(self, account: str, until: float) -> None:
        """No request to the account starts before `until` (a provider's `Retry-After`)."""
        ...


class TrackingStore(RequestBudget, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, items: Sequence[NewTracking]) -> int:
        """Insert rows (an already tracked message is left alone); returns how many are new."""
        ...

    async def claim_due(
        self, account: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[TrackedMessage]:
        """Take up to `limit` due rows of the account, oldest due first, until `lease_until`."""
        ...

    async def wait_for_due(self, account: str, seconds: float) -> None:
        """Return when rows of the account may have become due (another process added
        them), or after `seconds`, whichever comes first."""
        ...

    async def complete(self, outcomes: Sequence[PollOutcome], owner: str, now: datetime) -> None:
        """Write back outcomes of rows `owner` still holds (a lost lease is ignored)."""
        ...

    async def release(self, ids: Sequence[int], owner: str, next_poll_at: datetime) -> None:
        """Give claimed rows back without polling them (shutdown, paused account)."""
        ...

    async def find(self, account: str, message_id: str) -> TrackedMessage | None: ...

    async def find_recipient(
        self, account: str, sending_id: str, recipient: str
    ) -> TrackedMessage | None:
        """The message of a sending (360NRS sendingId) to a recipient, for report backfills."""
        ...

    async def summaries(self, now: datetime) -> list[AccountSummary]: ...

    async def tracked(self, query: TrackingFilter) -> list[TrackedMessage]:
        """Rows matching `query`, by id after `query.after_id`."""
        ...

    async def pause(self, account: str, reason: str, now: datetime, until: datetime) -> None: ...

    async def resume(self, account: str) -> bool: ...

    async def pauses(self) -> list[AccountPause]: ...

    async def note_bad_answer(self, account: str, error: str, now: datetime) -> None:
        """Count an answer that could not be read, and keep its error as the last one."""
        ...

    async def bad_answers(self) -> list[AccountBadAnswers]: ...
