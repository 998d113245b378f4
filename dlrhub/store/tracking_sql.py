"""The tracking store, written once for SQLite and PostgreSQL over `dlrhub.store.database`.

The tables are the schema's (`dlrhub/store/migrations.py`, version 1); open the
event store first, which checks or migrates it. Times are integers,
microseconds since the epoch (UTC).

A claim is one `UPDATE ... RETURNING` that moves the rows' `next_poll_us` to
the lease's end and names the owner, so a crashed poller's rows come back by
themselves when the lease runs out, and another poller never sees them due
meanwhile. On PostgreSQL its sub-select locks the rows it picks `FOR UPDATE
SKIP LOCKED`: several pollers claiming at once each take other rows, without
waiting for each other; on SQLite `BEGIN IMMEDIATE` lets one claim in at a
time.

The request budget (`RequestBudget`, table `request_budget`) is one upsert
per request, `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`: the row of the
account serializes every process's reservations, on either backend. On SQLite
it runs on a connection of its own with `synchronous=NORMAL` (`open_tracking`):
losing the last reservations in a power cut costs nothing (the next ones start
from now), and a request need not wait for an fsync, nor for a claim or a
write-back on the main connection. The auth pause (`tracking_pauses`) is a row
too, so every process sees it.

On PostgreSQL, adding rows that are due (a send's, `POST /v1/tracking`)
sends `NOTIFY dlrhub_tracking` with the account as payload, at commit; pollers
`LISTEN` (`Wakeups`) and claim at once instead of at the end of their
`idle_sleep`, which remains the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dlrhub.event import Status, epoch_micros
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase, open_database
from dlrhub.store.notifications import Notifications
from dlrhub.store.settings import StoreConfig
from dlrhub.store.sql_statements import Execute, ExecuteMany, Fetch, Rows, Transaction
from dlrhub.store.tracking import (
    AccountBadAnswers,
    AccountPause,
    AccountSummary,
    NewTracking,
    PollOutcome,
    TrackedMessage,
    TrackingFilter,
)

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500
NOTIFY_CHANNEL = "dlrhub_tracking"
DUE_SOON_US = 1_000_000  # rows due within this wake the account's waiting pollers
INSERT_ROWS = 500  # rows per multi-row INSERT (13 parameters each)

COLUMNS = (
    "id, account, provider, message_id, created_us, recipient, correlation_id, channel,"
    " sending_id, status, provider_status, last_event_us, next_poll_us, attempts, misses,"
    " stopped_reason, stopped_us"
)

INSERT = """
INSERT INTO tracked_messages (account, provider, message_id, recipient, correlation_id, channel,
    sending_id, created_us, status, provider_status, next_poll_us, stopped_reason, stopped_us)
VALUES {values}
ON CONFLICT (account, message_id) DO NOTHING
RETURNING id
"""
INSERT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

CLAIM = f"""
UPDATE tracked_messages SET next_poll_us = ?, lease_owner = ?
WHERE id IN (
    SELECT id FROM tracked_messages
    WHERE account = ? AND next_poll_us IS NOT NULL AND next_poll_us <= ?
    ORDER BY next_poll_us LIMIT ?{{skip_locked}}
)
RETURNING {COLUMNS}
"""  # noqa: S608 (constant column list)

COMPLETE = """
UPDATE tracked_messages SET status = ?, provider_status = ?, last_event_us = ?, attempts = ?,
    misses = ?, next_poll_us = ?, stopped_reason = ?, stopped_us = ?, lease_owner = NULL
WHERE id = ? AND lease_owner = ?
"""

RELEASE = """
UPDATE tracked_messages SET next_poll_us = ?, lease_owner = NULL
WHERE id = ? AND lease_owner = ?
"""

# The account's next free start moves to max(now, next free start) + interval;
# the reserved start is the returned value minus the interval.
RESERVE = """
INSERT INTO request_budget (account, next_us) VALUES (?, ?)
ON CONFLICT (account) DO UPDATE
    SET next_us = {greatest}(excluded.next_us, request_budget.next_us + ?)
RETURNING next_us
"""

DEFER = """
INSERT INTO request_budget (account, next_us) VALUES (?, ?)
ON CONFLICT (account) DO UPDATE SET next_us = {greatest}(excluded.next_us, request_budget.next_us)
"""

PAUSE = """
INSERT INTO tracking_pauses (account, reason, paused_us, until_us) VALUES (?, ?, ?, ?)
ON CONFLICT (account) DO UPDATE SET reason = excluded.reason,
    paused_us = excluded.paused_us, until_us = excluded.until_us
"""

BAD_ANSWER = """
INSERT INTO tracking_bad_answers (account, count, last_error, last_us) VALUES (?, 1, ?, ?)
ON CONFLICT (account) DO UPDATE SET count = tracking_bad_answers.count + 1,
    last_error = excluded.last_error, last_us = excluded.last_us
"""

# Due: its time has come; in flight: a poller holds its lease (claimed, not run out).
SUMMARIES = """
SELECT account, stopped_reason, count(*),
    sum(CASE WHEN next_poll_us IS NOT NULL AND next_poll_us <= ? THEN 1 ELSE 0 END),
    sum(CASE WHEN lease_owner IS NOT NULL AND next_poll_us > ? THEN 1 ELSE 0 END)
FROM tracked_messages GROUP BY account, stopped_reason ORDER BY account
"""


def tracked_query(query: TrackingFilter) -> tuple[str, list[Any]]:
    """The SELECT of `SQLTrackingStore.tracked` and its parameters (tests read its plan)."""
    where: list[str] = ["id > ?"]
    params: list[Any] = [query.after_id]
    if query.account is not None:
        where.append("account = ?")
        params.append(query.account)
    if query.stopped_reason is not None:
        where.append("stopped_reason = ?")
        params.append(query.stopped_reason)
    elif query.state == "active":
        where.append("stopped_reason IS NULL")
    elif query.state == "stopped":
        where.append("stopped_reason IS NOT NULL")
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status.value)
    sql = f"SELECT {COLUMNS} FROM tracked_messages WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"  # noqa: S608
    return sql, [*params, query.limit]


def _us(moment: datetime | None) -> int | None:
    return epoch_micros(moment) if moment is not None else None


def _time(micros: int | None) -> datetime | None:
    return datetime.fromtimestamp(micros / 1_000_000, UTC) if micros is not None else None


def _row(row: Sequence[Any]) -> TrackedMessage:
    created = _time(row[4])
    assert created is not None
    return TrackedMessage(
        id=int(row[0]),
        account=row[1],
        provider=row[2],
        message_id=row[3],
        created_at=created,
        recipient=row[5],
        correlation_id=row[6],
        channel=row[7],
        sending_id=row[8],
        status=Status(row[9]) if row[9] else None,
        provider_status=row[10],
        last_event_at=_time(row[11]),
        next_poll_at=_time(row[12]),
        attempts=int(row[13]),
        misses=int(row[14]),
        stopped_reason=row[15],
        stopped_at=_time(row[16]),
    )


def _new_row(item: NewTracking) -> tuple[Any, ...]:
    created = epoch_micros(item.created_at)
    return (
        item.account,
        item.provider,
        item.message_id,
        item.recipient,
        item.correlation_id,
        item.channel,
        item.sending_id,
        created,
        item.status.value if item.status else None,
        item.provider_status,
        _us(item.next_poll_at),
        item.stopped_reason,
        created if item.stopped_reason else None,
    )


def _fetch(sql: str, params: Sequence[Any]) -> Transaction[Rows]:
    return (yield Fetch(sql, params))


def _execute(sql: str, params: Sequence[Any]) -> Transaction[None]:
    yield Execute(sql, params)


def _execute_many(sql: str, rows: Sequence[Sequence[Any]]) -> Transaction[None]:
    yield ExecuteMany(sql, rows)


def _insert(rows: Sequence[tuple[Any, ...]], notify: Sequence[str]) -> Transaction[int]:
    added = 0
    for start in range(0, len(rows), INSERT_ROWS):
        chunk = rows[start : start + INSERT_ROWS]
        sql = INSERT.format(values=", ".join([INSERT_VALUES] * len(chunk)))
        params = [value for row in chunk for value in row]
        added += len((yield Fetch(sql, params)))
    for account in notify:  # delivered when the transaction commits
        yield Fetch("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, account))
    return added


class Wakeups:
    """PostgreSQL `LISTEN dlrhub_tracking` (`dlrhub/store/notifications.py`): a poller
    waiting for due rows wakes when another process adds some for its account (the
    payload), instead of at the end of its `idle_sleep`. While the connection is down
    (it is reopened), waits simply last their timeout: the slow poll is the fallback."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.notifications = Notifications(database.dsn, NOTIFY_CHANNEL, self._heard)
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _heard(self, account: str | None) -> None:
        if account is None:  # (re)connected: what was added meanwhile was not heard
            for event in self._events.values():
                event.set()
        else:
            self._event(account).set()

    def _event(self, account: str) -> asyncio.Event:
        return self._events.setdefault(account, asyncio.Event())

    async def wait(self, account: str, seconds: float) -> None:
        if self._task is None:  # only processes that wait (pollers) listen
            self._task = asyncio.create_task(
                self.notifications.listen(), name="dlrhub-tracking-listen"
            )
        event = self._event(account)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()


class SQLTrackingStore:
    """`TrackingStore` over a `Database`; the budget on `budget_database` when given."""

    def __init__(
        self,
        database: Database,
        budget_database: Database | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        self.database = database
        self.budget_database = budget_database
        self.wakeups = wakeups
        dialect = database.dialect
        self._claim = CLAIM.format(skip_locked=dialect.skip_locked)
        self._reserve = RESERVE.format(greatest=dialect.greatest)
        self._defer = DEFER.format(greatest=dialect.greatest)

    @property
    def name(self) -> str:
        return self.database.name

    async def open(self) -> None:
        await self.database.open()
        if self.budget_database is not None:
            try:
                await self.budget_database.open()
            except BaseException:
                await self.database.close()
                raise

    async def close(self) -> None:
        if self.wakeups is not None:
            await self.wakeups.close()
        if self.budget_database is not None:
            await self.budget_database.close()
        await self.database.close()

    async def add(self, items: Sequence[NewTracking]) -> int:
        if not items:
            return 0
        notify: list[str] = []
        if self.database.dialect.name == "postgres":
            soon = epoch_micros(datetime.now(UTC)) + DUE_SOON_US
            due = {
                item.account
                for item in items
                if item.next_poll_at is not None and epoch_micros(item.next_poll_at) <= soon
            }
            notify = sorted(due)
        return await self.database.transact(_insert([_new_row(item) for item in items], notify))

    async def wait_for_due(self, account: str, seconds: float) -> None:
        if self.wakeups is not None:
            await self.wakeups.wait(account, seconds)
        else:
            await asyncio.sleep(seconds)

    async def claim_due(
        self, account: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[TrackedMessage]:
        params = (epoch_micros(lease_until), owner, account, epoch_micros(now), limit)
        rows = await self.database.transact(_fetch(self._claim, params))
        return sorted((_row(row) for row in rows), key=lambda message: message.id)

    async def complete(self, outcomes: Sequence[PollOutcome], owner: str, now: datetime) -> None:
        if not outcomes:
            return
        stopped_us = epoch_micros(now)
        rows = [
            (
                outcome.status.value if outcome.status else None,
                outcome.provider_status,
                _us(outcome.last_event_at),
                outcome.attempts,
                outcome.misses,
                _us(outcome.next_poll_at),
                outcome.stopped_reason,
                stopped_us if outcome.stopped_reason else None,
                outcome.id,
                owner,
            )
            for outcome in outcomes
        ]
        await self.database.transact(_execute_many(COMPLETE, rows))

    async def release(self, ids: Sequence[int], owner: str, next_poll_at: datetime) -> None:
        if ids:
            next_us = epoch_micros(next_poll_at)
            rows = [(next_us, row_id, owner) for row_id in ids]
            await self.database.transact(_execute_many(RELEASE, rows))

    async def find(self, account: str, message_id: str) -> TrackedMessage | None:
        rows = await self.database.read(
            f"SELECT {COLUMNS} FROM tracked_messages WHERE account = ? AND message_id = ?",  # noqa: S608
            (account, message_id),
        )
        return _row(rows[0]) if rows else None

    async def find_recipient(
        self, account: str, sending_id: str, recipient: str
    ) -> TrackedMessage | None:
        rows = await self.database.read(
            f"SELECT {COLUMNS} FROM tracked_messages"  # noqa: S608
            " WHERE account = ? AND sending_id = ? AND recipient = ? ORDER BY id LIMIT 1",
            (account, sending_id, recipient),
        )
        return _row(rows[0]) if rows else None

    async def summaries(self, now: datetime) -> list[AccountSummary]:
        now_us = epoch_micros(now)
        rows = await self.database.read(SUMMARIES, (now_us, now_us))
        summaries: dict[str, AccountSummary] = {}
        for account, reason, count, due, in_flight in rows:
            summary = summaries.setdefault(account, AccountSummary(account))
            if reason is None:
                summaries[account] = AccountSummary(
                    account, int(count), int(due or 0), summary.stopped, int(in_flight or 0)
                )
            else:
                summary.stopped[str(reason)] = int(count)
        return list(summaries.values())

    async def tracked(self, query: TrackingFilter) -> list[TrackedMessage]:
        sql, params = tracked_query(query)
        return [_row(row) for row in await self.database.read(sql, params)]

    async def pause(self, account: str, reason: str, now: datetime, until: datetime) -> None:
        params = (account, reason, epoch_micros(now), epoch_micros(until))
        await self.database.transact(_execute(PAUSE, params))

    async def resume(self, account: str) -> bool:
        rows = await self.database.transact(
            _fetch("DELETE FROM tracking_pauses WHERE account = ? RETURNING account", (account,))
        )
        return bool(rows)

    async def pauses(self) -> list[AccountPause]:
        rows = await self.database.read(
            "SELECT account, reason, paused_us, until_us FROM tracking_pauses ORDER BY account"
        )
        result = []
        for account, reason, paused_us, until_us in rows:
            paused_at, until = _time(paused_us), _time(until_us)
            assert paused_at is not None and until is not None
            result.append(AccountPause(account, reason, paused_at, until))
        return result

    async def note_bad_answer(self, account: str, error: str, now: datetime) -> None:
        params = (account, error[:MAX_ERROR_CHARS], epoch_micros(now))
        await self.database.transact(_execute(BAD_ANSWER, params))

    async def bad_answers(self) -> list[AccountBadAnswers]:
        rows = await self.database.read(
            "SELECT account, count, last_error, last_us FROM tracking_bad_answers ORDER BY account"
        )
        result = []
        for account, count, last_error, last_us in rows:
            last_at = _time(last_us)
            assert last_at is not None
            result.append(AccountBadAnswers(account, int(count), str(last_error), last_at))
        return result

    async def reserve_request(self, account: str, interval: float, now: float) -> float:
        step = round(interval * 1_000_000)
        params = (account, round(now * 1_000_000) + step, step)
        rows = await self._budget().transact(_fetch(self._reserve, params))
        return (int(rows[0][0]) - step) / 1_000_000

    async def defer_requests(self, account: str, until: float) -> None:
        await self._budget().transact(_execute(self._defer, (account, round(until * 1_000_000))))

    def _budget(self) -> Database:
        return self.budget_database or self.database


def open_tracking(settings: StoreConfig, data_dir: Path) -> SQLTrackingStore:
    """The tracking store of the configured backend (not yet opened; open the event store
    first, which prepares the schema)."""
    database = open_database(settings, data_dir)
    if isinstance(database, SQLiteDatabase):
        budget = SQLiteDatabase(database.path, synchronous="NORMAL")
        return SQLTrackingStore(database, budget)
    assert isinstance(database, PostgresDatabase)
    return SQLTrackingStore(database, wakeups=Wakeups(database))
