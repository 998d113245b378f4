"""SQLite tracking store, in the same file as the event log, with its own connection.

WAL, `busy_timeout=10000`, and every write in `BEGIN IMMEDIATE`: the ingest
writer and other pollers write the same file. A claim is one `UPDATE ...
RETURNING` that moves the rows' `next_poll_at` to the lease's end and names
the owner, so a crashed poller's rows come back by themselves when the lease
runs out, and a second poller never sees them due meanwhile. Times are
integers, microseconds since the epoch (UTC).

The request budget (`RequestBudget`, table `request_budget`) is one upsert
per request in its own `BEGIN IMMEDIATE` on a second connection with
`synchronous=NORMAL`: losing the last reservations in a power cut costs
nothing (the next ones start from now), and a request need not wait for an
fsync, nor for a claim or a write-back on the main connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from dlrhub.event import Status, epoch_micros
from dlrhub.store.base import StoreUnavailable
from dlrhub.store.sqlite import connect_sqlite
from dlrhub.store.tracking import (
    AccountBadAnswers,
    AccountPause,
    AccountSummary,
    NewTracking,
    PollOutcome,
    TrackedMessage,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracked_messages (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient TEXT,
    correlation_id TEXT,
    channel TEXT NOT NULL,
    sending_id TEXT,
    created_us INTEGER NOT NULL,
    status TEXT,
    provider_status TEXT,
    last_event_us INTEGER,
    next_poll_us INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    stopped_reason TEXT,
    stopped_us INTEGER,
    UNIQUE (account, message_id)
);
CREATE INDEX IF NOT EXISTS tracked_due ON tracked_messages (account, next_poll_us)
    WHERE next_poll_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS tracked_by_sending ON tracked_messages (account, sending_id, recipient)
    WHERE sending_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS request_budget (
    account TEXT PRIMARY KEY,
    next_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking_pauses (
    account TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_us INTEGER NOT NULL,
    until_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking_bad_answers (
    account TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    last_us INTEGER NOT NULL
);
"""

MAX_ERROR_CHARS = 500

COLUMNS = (
    "id, account, provider, message_id, created_us, recipient, correlation_id, channel,"
    " sending_id, status, provider_status, last_event_us, next_poll_us, attempts, misses,"
    " stopped_reason, stopped_us"
)

INSERT = """
INSERT INTO tracked_messages (account, provider, message_id, recipient, correlation_id, channel,
    sending_id, created_us, status, provider_status, next_poll_us, stopped_reason, stopped_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account, message_id) DO NOTHING
"""

CLAIM = f"""
UPDATE tracked_messages SET next_poll_us = ?, lease_owner = ?
WHERE id IN (
    SELECT id FROM tracked_messages
    WHERE account = ? AND next_poll_us IS NOT NULL AND next_poll_us <= ?
    ORDER BY next_poll_us LIMIT ?
)
RETURNING {COLUMNS}
"""  # noqa: S608 (constant column list)

COMPLETE = """
UPDATE tracked_messages SET status = ?, provider_status = ?, last_event_us = ?, attempts = ?,
    misses = ?, next_poll_us = ?, stopped_reason = ?, stopped_us = ?, lease_owner = NULL
WHERE id = ? AND lease_owner = ?
"""


# The account's next free start moves to max(now, next free start) + interval;
# the reserved start is the returned value minus the interval.
RESERVE = """
INSERT INTO request_budget (account, next_us) VALUES (?, ?)
ON CONFLICT (account) DO UPDATE
    SET next_us = max(excluded.next_us, request_budget.next_us + ?)
RETURNING next_us
"""

DEFER = """
INSERT INTO request_budget (account, next_us) VALUES (?, ?)
ON CONFLICT (account) DO UPDATE SET next_us = max(excluded.next_us, request_budget.next_us)
"""


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


class SQLiteTrackingStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection, shared by every account loop: one transaction at a time.
        self._lock = asyncio.Lock()
        # The request budget's own connection (see the module docstring).
        self._budget_db: aiosqlite.Connection | None = None
        self._budget_lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self._db = await connect_sqlite(self.path)
            await self._write_script(SCHEMA)
            self._budget_db = await connect_sqlite(self.path, synchronous="NORMAL")
        except (sqlite3.Error, OSError) as error:
            await self.close()
            raise StoreUnavailable(
                f"cannot open the tracking tables in {self.path}: {error}"
            ) from error

    async def close(self) -> None:
        if self._budget_db is not None:
            await self._budget_db.close()
            self._budget_db = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable("the tracking store is not open")
        return self._db

    async def _write_script(self, script: str) -> None:
        async with self._lock:
            await self._write_script_locked(script)

    async def _write_script_locked(self, script: str) -> None:
        db = self._connection()
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    await db.execute(statement)
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise

    async def _write(self, sql: str, rows: Sequence[Sequence[Any]], *, many: bool = True) -> int:
        async with self._lock:
            return await self._write_locked(sql, rows, many=many)

    async def _write_locked(self, sql: str, rows: Sequence[Sequence[Any]], *, many: bool) -> int:
        db = self._connection()
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                if many:
                    await db.executemany(sql, rows)
                else:
                    await db.execute(sql, rows[0])
                changed = db.total_changes - before
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the tracking store could not commit: {error}") from error
        return changed

    async def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._lock:
            return await self._read_locked(sql, params)

    async def _read_locked(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            async with self._connection().execute(sql, params) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the tracking store could not be read: {error}") from error

    async def add(self, items: Sequence[NewTracking]) -> int:
        if not items:
            return 0
        rows = [
            (
                item.account,
                item.provider,
                item.message_id,
                item.recipient,
                item.correlation_id,
                item.channel,
                item.sending_id,
                epoch_micros(item.created_at),
                item.status.value if item.status else None,
                item.provider_status,
                _us(item.next_poll_at),
                item.stopped_reason,
                epoch_micros(item.created_at) if item.stopped_reason else None,
            )
            for item in items
        ]
        return await self._write(INSERT, rows)

    async def claim_due(
        self, account: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[TrackedMessage]:
        async with self._lock:
            return await self._claim_locked(account, now, limit, owner, lease_until)

    async def _claim_locked(
        self, account: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[TrackedMessage]:
        params = (epoch_micros(lease_until), owner, account, epoch_micros(now), limit)
        rows = await _immediate(self._connection(), CLAIM, params, "claim")
        return sorted((_row(row) for row in rows), key=lambda message: message.id)

    async def complete(self, outcomes: Sequence[PollOutcome], owner: str, now: datetime) -> None:
        if not outcomes:
            return
        rows = [
            (
                outcome.status.value if outcome.status else None,
                outcome.provider_status,
                _us(outcome.last_event_at),
                outcome.attempts,
                outcome.misses,
                _us(outcome.next_poll_at),
                outcome.stopped_reason,
                epoch_micros(now) if outcome.stopped_reason else None,
                outcome.id,
                owner,
            )
            for outcome in outcomes
        ]
        await self._write(COMPLETE, rows)

    async def release(self, ids: Sequence[int], owner: str, next_poll_at: datetime) -> None:
        if ids:
            await self._write(
                "UPDATE tracked_messages SET next_poll_us = ?, lease_owner = NULL"
                " WHERE id = ? AND lease_owner = ?",
                [(epoch_micros(next_poll_at), row_id, owner) for row_id in ids],
            )

    async def find(self, account: str, message_id: str) -> TrackedMessage | None:
        rows = await self._read(
            f"SELECT {COLUMNS} FROM tracked_messages WHERE account = ? AND message_id = ?",  # noqa: S608
            (account, message_id),
        )
        return _row(rows[0]) if rows else None

    async def find_recipient(
        self, account: str, sending_id: str, recipient: str
    ) -> TrackedMessage | None:
        rows = await self._read(
            f"SELECT {COLUMNS} FROM tracked_messages"  # noqa: S608
            " WHERE account = ? AND sending_id = ? AND recipient = ? ORDER BY id LIMIT 1",
            (account, sending_id, recipient),
        )
        return _row(rows[0]) if rows else None

    async def summaries(self, now: datetime) -> list[AccountSummary]:
        rows = await self._read(
            "SELECT account, stopped_reason, count(*),"
            " sum(next_poll_us IS NOT NULL AND next_poll_us <= ?)"
            " FROM tracked_messages GROUP BY account, stopped_reason ORDER BY account",
            (epoch_micros(now),),
        )
        summaries: dict[str, AccountSummary] = {}
        for account, reason, count, due in rows:
            summary = summaries.setdefault(account, AccountSummary(account))
            if reason is None:
                summaries[account] = AccountSummary(
                    account, int(count), int(due or 0), summary.stopped
                )
            else:
                summary.stopped[str(reason)] = int(count)
        return list(summaries.values())

    async def pause(self, account: str, reason: str, now: datetime, until: datetime) -> None:
        await self._write(
            "INSERT INTO tracking_pauses (account, reason, paused_us, until_us) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account) DO UPDATE SET reason = excluded.reason,"
            " paused_us = excluded.paused_us, until_us = excluded.until_us",
            [(account, reason, epoch_micros(now), epoch_micros(until))],
        )

    async def resume(self, account: str) -> bool:
        changed = await self._write("DELETE FROM tracking_pauses WHERE account = ?", [(account,)])
        return changed > 0

    async def pauses(self) -> list[AccountPause]:
        rows = await self._read(
            "SELECT account, reason, paused_us, until_us FROM tracking_pauses ORDER BY account", ()
        )
        result = []
        for account, reason, paused_us, until_us in rows:
            paused_at, until = _time(paused_us), _time(until_us)
            assert paused_at is not None and until is not None
            result.append(AccountPause(account, reason, paused_at, until))
        return result

    async def note_bad_answer(self, account: str, error: str, now: datetime) -> None:
        await self._write(
            "INSERT INTO tracking_bad_answers (account, count, last_error, last_us)"
            " VALUES (?, 1, ?, ?) ON CONFLICT (account) DO UPDATE SET"
            " count = count + 1, last_error = excluded.last_error, last_us = excluded.last_us",
            [(account, error[:MAX_ERROR_CHARS], epoch_micros(now))],
        )

    async def bad_answers(self) -> list[AccountBadAnswers]:
        rows = await self._read(
            "SELECT account, count, last_error, last_us FROM tracking_bad_answers ORDER BY account",
            (),
        )
        result = []
        for account, count, last_error, last_us in rows:
            last_at = _time(last_us)
            assert last_at is not None
            result.append(AccountBadAnswers(account, int(count), str(last_error), last_at))
        return result

    async def reserve_request(self, account: str, interval: float, now: float) -> float:
        step = round(interval * 1_000_000)
        rows = await self._budget_write(RESERVE, (account, round(now * 1_000_000) + step, step))
        return (int(rows[0][0]) - step) / 1_000_000

    async def defer_requests(self, account: str, until: float) -> None:
        await self._budget_write(DEFER, (account, round(until * 1_000_000)))

    async def _budget_write(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._budget_lock:
            db = self._budget_db
            if db is None:
                raise StoreUnavailable("the tracking store is not open")
            return await _immediate(db, sql, params, "take a request budget")


async def _immediate(
    db: aiosqlite.Connection, sql: str, params: Sequence[Any], what: str
) -> list[tuple[Any, ...]]:
    """`sql`'s rows, run in a transaction that takes the write lock first (`BEGIN
    IMMEDIATE`), so that processes sharing the file claim and reserve one at a time."""
    try:
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute(sql, params) as cursor:
                rows = [tuple(row) for row in await cursor.fetchall()]
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise
    except sqlite3.Error as error:
        raise StoreUnavailable(f"the tracking store could not {what}: {error}") from error
    return rows
