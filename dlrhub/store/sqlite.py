"""SQLite backend (the embedded default), through aiosqlite.

WAL mode with `synchronous=FULL`: a commit is on disk when it returns. Writers
(the server's writer task, a CLI `quarantine reprocess`) take SQLite's write
lock with `BEGIN IMMEDIATE`; reads use a second connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from dlrhub.store.sql import SCHEMA_TEMPLATE, SQLConnection, SQLStore

SCHEMA = SCHEMA_TEMPLATE.format(bigint="INTEGER", bytes="BLOB")


async def connect_sqlite(
    path: Path, *, synchronous: str = "FULL", query_only: bool = False
) -> aiosqlite.Connection:
    """A connection to dlrhub's SQLite file with the settings every user of it needs.

    WAL lets readers run beside the one writer; `busy_timeout` makes a second
    writer (a CLI command, the sink worker) wait for the lock instead of failing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        await connection.execute("PRAGMA busy_timeout=10000")
        if query_only:
            await connection.execute("PRAGMA query_only=ON")
        else:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        await connection.close()
        raise
    return connection


class _Connection:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.connection.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.connection.execute(sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.connection.executemany(sql, rows)


class SQLiteBackend:
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"SQLite store at {path}"
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None

    async def open(self) -> None:
        writer = await connect_sqlite(self.path)
        self._writer = _Connection(writer)
        await writer.executescript(SCHEMA)
        self._reader = _Connection(await connect_sqlite(self.path, query_only=True))

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            if connection is not None:
                await connection.connection.close()
        self._writer = self._reader = None

    @contextlib.asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[SQLConnection]:
        db = self._open(self._writer)
        await db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise

    async def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await self._open(self._reader).fetch(sql, params)

    def _open(self, connection: _Connection | None) -> _Connection:
        if connection is None:
            raise sqlite3.OperationalError("the store is not open")
        return connection


class SQLiteStore(SQLStore):
    """The embedded store. `open()` creates the file and schema if missing."""

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 512,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(SQLiteBackend(path), max_batch=max_batch, on_commit=on_commit)
        self.path = path
