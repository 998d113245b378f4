"""SQLite implementation of the sink state, in the event log's file, with its own connection.

The ingest writer (`sqlite.py`) writes the same file. Every write here is one
short `BEGIN IMMEDIATE` transaction and `busy_timeout` lets the two wait for
each other instead of failing. `synchronous=NORMAL` on this connection: in WAL
mode that is safe against a crashed process, and a power cut can only roll back
the last cursor moves, which means redelivery, never loss.
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

from dlrhub.event import Event, format_time, parse_time
from dlrhub.store.sink_state import (
    DeadLetter,
    DeadLetterState,
    ReplayJob,
    SinkState,
    SinkStateUnavailable,
)
from dlrhub.store.sqlite import connect_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS sink_cursors (
    sink TEXT PRIMARY KEY,
    after_seq INTEGER NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    last_error TEXT,
    last_error_at TEXT,
    last_delivered_at TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_dead_letters (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    doc BLOB NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'dead',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sink_dead_letters_by_sink ON sink_dead_letters (sink, state, id);
CREATE TABLE IF NOT EXISTS sink_replays (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    after_seq INTEGER NOT NULL,
    until_seq INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
"""

STATE_COLUMNS = """
c.sink, c.after_seq, c.paused, c.disabled_reason, c.last_error, c.last_error_at,
c.last_delivered_at, c.delivered,
(SELECT count(*) FROM sink_dead_letters d WHERE d.sink = c.sink),
(SELECT count(*) FROM sink_replays r WHERE r.sink = c.sink),
(SELECT count(*) FROM sink_dead_letters d WHERE d.sink = c.sink AND d.state = 'retry')
"""

DEAD_LETTER_COLUMNS = "id, sink, seq, doc, error, attempts, state, created_at, updated_at"


def _now() -> str:
    return format_time(datetime.now(UTC))


class SQLiteSinkState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            # NORMAL: a cursor move lost to a power cut only re-delivers (at least once).
            self._db = await connect_sqlite(self.path, synchronous="NORMAL")
            await self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as error:
            await self.close()
            raise SinkStateUnavailable(
                f"cannot open the sink state in {self.path}: {error}"
            ) from error

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # Cursors and control ------------------------------------------------------

    async def ensure(self, sink: str, *, start_after: int) -> SinkState:
        await self._write(
            "INSERT INTO sink_cursors (sink, after_seq, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (sink) DO NOTHING",
            (sink, start_after, _now()),
        )
        state = await self.state(sink)
        assert state is not None
        return state

    async def state(self, sink: str) -> SinkState | None:
        rows = await self._read(
            f"SELECT {STATE_COLUMNS} FROM sink_cursors c WHERE c.sink = ?",  # noqa: S608
            (sink,),
        )
        return _state(rows[0]) if rows else None

    async def states(self) -> list[SinkState]:
        rows = await self._read(
            f"SELECT {STATE_COLUMNS} FROM sink_cursors c ORDER BY c.sink",  # noqa: S608
            (),
        )
        return [_state(row) for row in rows]

    async def advance(
        self, sink: str, after_seq: int, *, delivered: int, delivered_at: datetime | None
    ) -> None:
        await self._write(
            "UPDATE sink_cursors SET after_seq = max(after_seq, ?), delivered = delivered + ?,"
            " last_delivered_at = coalesce(?, last_delivered_at), updated_at = ? WHERE sink = ?",
            (after_seq, delivered, _optional_time(delivered_at), _now(), sink),
        )

    async def count_delivered(self, sink: str, delivered: int, delivered_at: datetime) -> None:
        await self._write(
            "UPDATE sink_cursors SET delivered = delivered + ?, last_delivered_at = ?,"
            " updated_at = ? WHERE sink = ?",
            (delivered, format_time(delivered_at), _now(), sink),
        )

    async def set_paused(self, sink: str, paused: bool) -> None:
        if paused:
            sql = "UPDATE sink_cursors SET paused = 1, updated_at = ? WHERE sink = ?"
        else:
            sql = (
                "UPDATE sink_cursors SET paused = 0, disabled_reason = NULL, updated_at = ?"
                " WHERE sink = ?"
            )
        await self._write(sql, (_now(), sink))

    async def disable(self, sink: str, reason: str) -> None:
        await self._write(
            "UPDATE sink_cursors SET disabled_reason = ?, updated_at = ? WHERE sink = ?",
            (reason, _now(), sink),
        )

    async def record_error(self, sink: str, error: str, at: datetime) -> None:
        await self._write(
            "UPDATE sink_cursors SET last_error = ?, last_error_at = ?, updated_at = ?"
            " WHERE sink = ?",
            (error, format_time(at), _now(), sink),
        )

    # Dead letters -------------------------------------------------------------

    async def add_dead_letter(self, sink: str, event: Event, error: str, attempts: int) -> int:
        now = _now()
        cursor = await self._write(
            "INSERT INTO sink_dead_letters (sink, seq, event_id, doc, error, attempts,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sink, event.seq, event.id, event.to_document(), error, attempts, now, now),
        )
        return cursor

    async def dead_letters(
        self,
        sink: str,
        *,
        state: DeadLetterState | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        sql = f"SELECT {DEAD_LETTER_COLUMNS} FROM sink_dead_letters WHERE sink = ? AND id > ?"  # noqa: S608
        params: list[Any] = [sink, after_id]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        rows = await self._read(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [_dead_letter(row) for row in rows]

    async def request_retry(self, sink: str, ids: list[int] | None) -> int:
        return await self._update_dead_letters(
            "UPDATE sink_dead_letters SET state = 'retry', updated_at = ?"
            " WHERE sink = ? AND state = 'dead'",
            sink,
            ids,
            with_time=True,
        )

    async def resolve_dead_letter(self, dead_letter_id: int) -> None:
        await self._write("DELETE FROM sink_dead_letters WHERE id = ?", (dead_letter_id,))

    async def fail_dead_letter(self, dead_letter_id: int, error: str, attempts: int) -> None:
        await self._write(
            "UPDATE sink_dead_letters SET state = 'dead', error = ?, attempts = attempts + ?,"
            " updated_at = ? WHERE id = ?",
            (error, attempts, _now(), dead_letter_id),
        )

    async def drop_dead_letters(self, sink: str, ids: list[int] | None) -> int:
        return await self._update_dead_letters(
            "DELETE FROM sink_dead_letters WHERE sink = ?", sink, ids, with_time=False
        )

    async def _update_dead_letters(
        self, sql: str, sink: str, ids: list[int] | None, *, with_time: bool
    ) -> int:
        params: list[Any] = [_now(), sink] if with_time else [sink]
        if ids is not None:
            if not ids:
                return 0
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params += ids
        changed, _ = await self._transaction([(sql, params)])
        return int(changed)

    # Replays ------------------------------------------------------------------

    async def add_replay(self, sink: str, after_seq: int, until_seq: int) -> ReplayJob:
        job_id = await self._write(
            "INSERT INTO sink_replays (sink, after_seq, until_seq, created_at) VALUES (?, ?, ?, ?)",
            (sink, after_seq, until_seq, _now()),
        )
        return ReplayJob(job_id, sink, after_seq, until_seq)

    async def replays(self, sink: str) -> list[ReplayJob]:
        rows = await self._read(
            "SELECT id, sink, after_seq, until_seq FROM sink_replays WHERE sink = ? ORDER BY id",
            (sink,),
        )
        return [ReplayJob(int(row[0]), str(row[1]), int(row[2]), int(row[3])) for row in rows]

    async def advance_replay(self, job_id: int, after_seq: int) -> None:
        await self._transaction(
            [
                (
                    "UPDATE sink_replays SET after_seq = max(after_seq, ?) WHERE id = ?",
                    (after_seq, job_id),
                ),
                ("DELETE FROM sink_replays WHERE id = ? AND after_seq >= until_seq", (job_id,)),
            ]
        )

    # Plumbing -----------------------------------------------------------------

    async def _write(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement in its own IMMEDIATE transaction; answer the last row id."""
        _, row_id = await self._transaction([(sql, params)])
        return row_id

    async def _transaction(self, statements: list[tuple[str, Sequence[Any]]]) -> tuple[int, int]:
        """Run statements in one IMMEDIATE transaction; answer (rows changed, last row id)."""
        async with self._write_lock:
            db = self._connection()
            changed = row_id = 0
            try:
                try:
                    # Inside the try: a cancellation while BEGIN runs must still roll back.
                    await db.execute("BEGIN IMMEDIATE")
                    for sql, params in statements:
                        cursor = await db.execute(sql, params)
                        changed += max(cursor.rowcount, 0)
                        row_id = cursor.lastrowid or row_id
                    await db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        await db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise SinkStateUnavailable(
                    f"the sink state could not be written: {error}"
                ) from error
        return changed, row_id

    async def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        db = self._connection()
        try:
            async with db.execute(sql, params) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]
        except sqlite3.Error as error:
            raise SinkStateUnavailable(f"the sink state could not be read: {error}") from error

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise SinkStateUnavailable("the sink state is not open")
        return self._db


def _optional_time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _parse_optional(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def _state(row: tuple[Any, ...]) -> SinkState:
    return SinkState(
        sink=str(row[0]),
        after_seq=int(row[1]),
        paused=bool(row[2]),
        disabled_reason=row[3],
        last_error=row[4],
        last_error_at=_parse_optional(row[5]),
        last_delivered_at=_parse_optional(row[6]),
        delivered=int(row[7]),
        dead_letters=int(row[8]),
        replays_pending=int(row[9]),
        retries_pending=int(row[10]),
    )


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    dead_letter_id, sink, seq, doc, error, attempts, state, created_at, updated_at = row
    return DeadLetter(
        id=int(dead_letter_id),
        sink=str(sink),
        event=Event.from_json(doc).with_seq(int(seq)),
        error=str(error),
        attempts=int(attempts),
        state=state,
        created_at=parse_time(created_at),
        updated_at=parse_time(updated_at),
    )
