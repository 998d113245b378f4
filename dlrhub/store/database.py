"""Connections for the state beside the event log: sink state, tracking, leases, retention.

One `Database` per backend, so that each of those is written once, as SQL with
`?` placeholders (`dlrhub/store/dialect.py` has what differs) run as a
`Transaction` (`dlrhub/store/sql_statements.py`). Unlike the event store's
writer, a transaction here does not take the ingest writers' lock: it is
short, touches other tables, and concurrency is the database's (SQLite's
`BEGIN IMMEDIATE` lets one writer at a time in; PostgreSQL's row locks and
`FOR UPDATE SKIP LOCKED` let several work at once).

The schema is the event store's (`dlrhub/store/migrations.py`): open the event
store first, which checks or migrates it.

Failures: whatever the driver raises because the database is unavailable
becomes `StoreUnavailable`; a PostgreSQL connection that failed is terminated,
never reused (why: `dlrhub/store/postgres.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

from dlrhub.redact import redact_dsn
from dlrhub.store.base import StoreUnavailable
from dlrhub.store.dialect import POSTGRES, SQLITE, Dialect
from dlrhub.store.postgres import (
    CONNECT_TIMEOUT_SECONDS,
    PostgresBackend,
    fetch_rows,
    run_statement,
    session_settings,
    terminate_pooled,
)
from dlrhub.store.settings import StoreConfig
from dlrhub.store.sql_statements import (
    Execute,
    Fetch,
    Rows,
    Statement,
    T,
    Transaction,
    run_transaction_async,
)
from dlrhub.store.sqlite import connect_sqlite


class Database(Protocol):
    name: str  # for messages: "SQLite file /var/lib/dlrhub/dlrhub.sqlite3"
    dialect: Dialect

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def transact(self, transaction: Transaction[T]) -> T:
        """Run `transaction` in one database transaction; commit if it returns."""
        ...

    async def read(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...


class SQLiteDatabase:
    """One connection; one transaction at a time (`BEGIN IMMEDIATE`), reads between them.

    `synchronous="NORMAL"` for state whose last writes may be lost to a power cut
    without harm (a cursor that moved less only re-delivers).
    """

    dialect = SQLITE

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.name = f"SQLite file {path}"
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self._db = await connect_sqlite(self.path, synchronous=self.synchronous)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"cannot open the {self.name}: {error}") from error

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def transact(self, transaction: Transaction[T]) -> T:
        async with self._lock:
            db = self._connection()
            try:
                try:
                    # Inside the try: a cancellation while BEGIN runs must still roll back.
                    await db.execute("BEGIN IMMEDIATE")
                    run = functools.partial(_run_sqlite, db)
                    result = await run_transaction_async(transaction, run)
                    await db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        await db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise StoreUnavailable(f"the {self.name} could not commit: {error}") from error
        return result

    async def read(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        async with self._lock:
            try:
                async with self._connection().execute(sql, params) as cursor:
                    return [tuple(row) for row in await cursor.fetchall()]
            except sqlite3.Error as error:
                raise StoreUnavailable(f"the {self.name} could not be read: {error}") from error

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreUnavailable(f"the {self.name} is not open")
        return self._db


async def _run_sqlite(db: aiosqlite.Connection, statement: Statement) -> Rows:
    if isinstance(statement, Fetch):
        async with db.execute(statement.sql, statement.params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]
    if isinstance(statement, Execute):
        await db.execute(statement.sql, statement.params)
    else:
        await db.executemany(statement.sql, statement.rows)
    return []


class PostgresDatabase:
    """A small pool; each transaction on a connection of its own, no global lock."""

    dialect = POSTGRES
    errors = PostgresBackend.errors

    def __init__(self, dsn: str, schema: str = "dlrhub", *, max_connections: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self.max_connections = max_connections
        self.name = f"PostgreSQL database {redact_dsn(dsn)} (schema {schema})"
        self._settings = session_settings(dsn, schema)
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.max_connections,
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings=self._settings,
            )
        except self.errors as error:
            raise StoreUnavailable(f"cannot open the {self.name}: {error}") from error

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(*self.errors):
                await asyncio.wait_for(pool.close(), 5)

    async def transact(self, transaction: Transaction[T]) -> T:
        pool = self._opened()
        try:
            async with pool.acquire() as connection:
                try:
                    async with connection.transaction():
                        run = functools.partial(run_statement, connection)
                        return await run_transaction_async(transaction, run)
                except BaseException:
                    terminate_pooled(connection)  # the pool replaces it on a later acquire
                    raise
        except self.errors as error:
            raise StoreUnavailable(f"the {self.name} could not commit: {error}") from error

    async def read(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        pool = self._opened()
        try:
            async with pool.acquire() as connection:
                try:
                    return await fetch_rows(connection, sql, params)
                except BaseException:
                    terminate_pooled(connection)
                    raise
        except self.errors as error:
            raise StoreUnavailable(f"the {self.name} could not be read: {error}") from error

    def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable(f"the {self.name} is not open")
        return self._pool


def open_database(settings: StoreConfig, data_dir: Path, *, synchronous: str = "FULL") -> Database:
    """The database `settings` name (not yet opened); `synchronous` is SQLite's."""
    if settings.backend == "postgres":
        assert settings.dsn is not None  # checked with the configuration
        return PostgresDatabase(settings.dsn, settings.schema)
    return SQLiteDatabase(settings.sqlite_path(data_dir), synchronous=synchronous)
