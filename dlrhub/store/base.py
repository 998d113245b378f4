"""The store interface: what the receiver, the query API and the CLI need.

The SQLite implementation is the embedded default; a PostgreSQL one will
satisfy the same interface. Writes go through `write()`, which answers only
once the item is durably committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dlrhub.analytics.figures import DeliveryQuery, Sums
from dlrhub.event import Event, EventType, RawCallback, Status

if TYPE_CHECKING:
    from dlrhub.store.rollups import RebuildReport

# The largest integer SQLite and PostgreSQL (BIGINT) hold. Every seq, id and cursor
# from a user (a /v1 parameter, a CLI argument) is checked against it before it
# reaches the store, where a larger one is an overflow error, not an empty answer.
MAX_INTEGER = 2**63 - 1


class StoreUnavailable(Exception):
    """The store cannot take writes or answer reads right now; try again later."""


@dataclass(frozen=True, slots=True)
class Accept:
    """A callback and the events normalized from it."""

    raw: RawCallback
    events: list[Event]


@dataclass(frozen=True, slots=True)
class Quarantine:
    """An authenticated callback that could not be normalized, and why."""

    raw: RawCallback
    reason: str


@dataclass(frozen=True, slots=True)
class Reprocess:
    """The outcome of normalizing a quarantined callback again.

    `events` set: the entry is resolved and the events stored. `events` None:
    it failed again and `reason` replaces the old one.
    """

    quarantine_id: int
    events: list[Event] | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Forget a quarantine entry (`dlrhub quarantine drop`).

    The received callback stays, so a provider's retry of it is still a
    duplicate; ids are never given out again.
    """

    quarantine_id: int


@dataclass(frozen=True, slots=True)
class Probe:
    """A tiny durable write that proves the store takes writes (readiness)."""


@dataclass(frozen=True, slots=True)
class KeepSecret:
    """Keep `value` as the shared secret `name` unless one is kept already (`shared_secret`).

    A write, so that every process sharing the store ends up with the first value
    committed; the answer's outcome is "kept" either way.
    """

    name: str
    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RollUp:
    """Bring the delivery rollups up to the last committed event (before reading them)."""


WriteItem = Accept | Quarantine | Reprocess | Drop | Probe | KeepSecret | RollUp

Outcome = Literal[
    "stored",
    "duplicate",
    "quarantined",
    "reprocessed",
    "failed_again",
    "dropped",
    "not_found",
    "probed",
    "kept",
    "rolled_up",
]


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: Outcome
    events: list[Event] = field(default_factory=list)
    quarantine_id: int | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read, in log order (`descending`: newest first).

    `since` and `until` bound `received_at` (`since` included, `until` not);
    `after_seq` and `before_seq` bound `seq` (both excluded, `before_seq` 0: none).
    """

    source: str | None = None
    provider: str | None = None
    message_id: str | None = None
    type: EventType | None = None
    status: Status | None = None
    correlation_id: str | None = None
    recipient: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = 0
    before_seq: int = 0
    descending: bool = False
    limit: int = 100


@dataclass(frozen=True, slots=True)
class MessageState:
    """The current, never-regressing state of one message."""

    provider: str
    message_id: str
    source: str
    status: Status
    provider_status: str | None
    occurred_at: datetime
    last_seq: int
    recipient: str | None
    correlation_id: str | None
    # When the event of `last_seq` was received; None where it is not known (not read,
    # or that event was pruned by retention).
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        from dlrhub.event import format_time

        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "source": self.source,
            "status": self.status.value,
            "provider_status": self.provider_status,
            "occurred_at": format_time(self.occurred_at),
            "last_seq": self.last_seq,
            "recipient": self.recipient,
            "correlation_id": self.correlation_id,
            "updated_at": format_time(self.updated_at) if self.updated_at is not None else None,
        }


class BadSearch(ValueError):
    """A message search that cannot be answered as asked (e.g. too few digits of a number);
    the message says what to change. The HTTP layer answers it with a 400."""


MAX_SEARCH_LIMIT = 500


@dataclass(frozen=True, slots=True)
class MessageSearch:
    """What the operator console searches messages by; every given filter must match.

    `recipient`: its digits (other characters dropped) are a suffix of the stored
    recipient's digits: at least 4 digits, or a full number with a leading "+", which
    matches exactly those digits (see `dlrhub/store/message_search.py`). `since` and
    `until` are by when the message's last event (`last_seq`) was received, at or after
    `since` and before `until`. `before_seq` is the cursor of the next page: the smallest
    `last_seq` of the page before. Answers are newest first (`last_seq` descending).
    """

    message_id: str | None = None
    correlation_id: str | None = None  # "your ref"
    recipient: str | None = None  # full number, or a suffix of >= 4 digits
    provider: str | None = None
    source: str | None = None
    status: str | None = None  # a `Status` value
    since: datetime | None = None  # by the message's last event's received time
    until: datetime | None = None
    before_seq: int | None = None  # cursor: messages whose last_seq < before_seq
    limit: int = 50


@dataclass(frozen=True, slots=True)
class CallbackCount:
    """Callbacks (and poll answers) received in one minute from one source, by outcome.

    `outcome`: "stored" (accepted, new), "duplicate" (a retry of one already received)
    or "quarantined" (authenticated but not understood).
    """

    minute: datetime  # UTC, at the start of the minute
    source: str
    outcome: str
    count: int

    def to_dict(self) -> dict[str, object]:
        from dlrhub.event import format_time

        return {
            "minute": format_time(self.minute),
            "source": self.source,
            "outcome": self.outcome,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class StoredCallback:
    """A callback or provider exchange as stored (redacted), with its row id."""

    id: int
    raw: RawCallback


QuarantineState = Literal["pending", "reprocessed"]


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: int
    raw: RawCallback
    reason: str
    state: QuarantineState
    attempts: int
    event_ids: list[str]

    def to_dict(self, *, with_raw: bool = False) -> dict[str, object]:
        from dlrhub.event import format_time

        data: dict[str, object] = {
            "id": self.id,
            "source": self.raw.source,
            "provider": self.raw.provider,
            "kind": self.raw.kind,
            "reason": self.reason,
            "state": self.state,
            "attempts": self.attempts,
            "received_at": format_time(self.raw.received_at),
            "event_ids": self.event_ids,
        }
        if with_raw:
            data["raw"] = {
                "method": self.raw.method,
                "query": self.raw.query,
                "content_type": self.raw.content_type,
                "body": self.raw.body.decode("utf-8", "replace"),
                "remote_addr": self.raw.remote_addr,
            }
        return data


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, item: WriteItem) -> WriteResult:
        """Commit `item` durably (grouped with concurrent writes) and say what happened."""
        ...

    def submit(self, item: WriteItem) -> asyncio.Future[WriteResult]:
        """`write` without a coroutine: queue `item` now, the future resolves after the commit."""
        ...

    async def events(self, query: EventFilter) -> list[Event]: ...

    async def message(self, provider: str, message_id: str) -> MessageState | None: ...

    async def callbacks_of(self, seqs: Sequence[int]) -> dict[int, StoredCallback]:
        """The stored callback or provider answer each event came from, by event seq.

        An event without one (or whose callback was pruned) is not in the answer.
        """
        ...

    async def quarantine_entries(
        self, *, state: QuarantineState | None = None, after_id: int = 0, limit: int = 100
    ) -> list[QuarantineEntry]: ...

    async def quarantine_entry(self, entry_id: int) -> QuarantineEntry | None: ...

    async def quarantine_pending_count(self) -> int: ...

    async def drop_quarantine(self, entry_ids: Sequence[int]) -> list[int]:
        """Drop these entries, pending or not, in one commit; answer the ids that existed."""
        ...

    async def drop_resolved_quarantine(self) -> list[int]:
        """Drop every reprocessed entry; answer their ids."""
        ...

    async def search_messages(self, query: MessageSearch) -> list[MessageState]:
        """Messages matching `query`, newest first (`last_seq` descending); `BadSearch`
        when it cannot be answered as asked."""
        ...

    async def callback_counts(self, since: datetime) -> list[CallbackCount]:
        """Per-minute counts from the minute holding `since` on, ordered by minute, source
        and outcome."""
        ...

    async def delivery_sums(self, query: DeliveryQuery) -> dict[tuple[Any, ...], Sums]:
        """The delivery rollups' sums per group (`dlrhub/store/rollup_reads.py`)."""
        ...

    async def catch_up_rollups(self) -> None:
        """Roll up every event committed so far, by any process (`dlrhub/store/rollups.py`)."""
        ...

    async def rebuild_rollups(self) -> RebuildReport:
        """Recompute the delivery rollups from the kept events (`dlrhub/store/rollups.py`)."""
        ...

    async def shared_secret(self, name: str) -> str:
        """A random secret named `name`, the same for every process sharing the store."""
        ...
