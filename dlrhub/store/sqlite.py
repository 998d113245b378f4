"""SQLite backend (the embedded default).

WAL mode with `synchronous=FULL`: a commit is on disk when it returns. Writers
(the server's writer task, a CLI `quarantine reprocess`) take SQLite's write
lock with `BEGIN IMMEDIATE`; reads use a second connection, through aiosqlite.

The write connection is used in two places, never at once. A batch's statements
run on the event loop itself: they are short C calls, and each round trip to a
thread (what aiosqlite does per statement) waited for a busy loop's turn and for
the GIL, which limited ingest more than SQLite did. The `COMMIT` (WAL writes,
fsync, checkpoints: the slow part) runs in a thread of its own, so the loop
serves requests meanwhile. `BEGIN IMMEDIATE` is tried on the loop without
waiting; when another process holds the write lock it is retried in the thread,
which waits up to `busy_timeout` (bench/README.md has the measurements).

`blocking_commit=True` is for a loop that serves nothing but this store (the
ingest worker process): the COMMIT, a lock wait and a rollback then run on the
loop itself. That loop has nothing else to do while a commit is on disk (new
callbacks wait in its socket), and the hand-off to a thread and back (a wake-up
and a GIL hand-over each way) made the ingest benchmark about 15 % slower
(bench/README.md).

The database file is created 0600 before SQLite opens it, so its `-wal` and
`-shm` files are 0600 too (`dlrhub/private_files.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite

from dlrhub.analytics.facts import Place
from dlrhub.private_files import create_private_file
from dlrhub.store.dialect import SQLITE
from dlrhub.store.folding import FoldRequest, SQLitePage
from dlrhub.store.migrations import MigrationMode, SchemaReport, prepare_schema
from dlrhub.store.sql import SQLStore
from dlrhub.store.sql_statements import (
    Execute,
    Fetch,
    Rows,
    Statement,
    T,
    Transaction,
    run_transaction,
)

BUSY_TIMEOUT_MS = 10_000
# WAL pages after which a commit also checkpoints (SQLite's default is 1,000, 4 MiB).
# A page rewritten by many commits (the tail of each table and index) is copied
# into the database once per checkpoint, so fewer, larger checkpoints copy less:
# 4,000 (16 MiB of WAL) gave the ingest benchmark 6-10 % more callbacks per second,
# and its p99 went from about 15 to 25 ms (the commit that checkpoints takes longer).
WAL_AUTOCHECKPOINT_PAGES = 4_000


def _pragmas(*, synchronous: str = "FULL", query_only: bool = False) -> list[str]:
    """WAL lets readers run beside the one writer; `busy_timeout` makes a second
    writer (a CLI command, the sink worker) wait for the lock instead of failing.
    Every writer checkpoints at the same WAL size: one with SQLite's default would
    checkpoint for all of them at a quarter of it."""
    if query_only:
        return [f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}", "PRAGMA query_only=ON"]
    return [
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}",
    ]


WRITER_PRAGMAS = _pragmas()
LOCKED_RETRY_SECONDS = 0.01


def _locked(error: sqlite3.Error) -> bool:
    """Switching a new file to WAL answers "database is locked" at once, without the busy
    handler, while another process opens it too: the switch is then tried again."""
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _execute_waiting(db: sqlite3.Connection, pragma: str) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute(pragma)
            return
        except sqlite3.OperationalError as error:
            if not _locked(error) or time.monotonic() > deadline:
                raise
        time.sleep(LOCKED_RETRY_SECONDS)


async def connect_sqlite(
    path: Path, *, synchronous: str = "FULL", query_only: bool = False
) -> aiosqlite.Connection:
    """A connection to dlrhub's SQLite file with the settings every user of it needs."""
    create_private_file(path)
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        for pragma in _pragmas(synchronous=synchronous, query_only=query_only):
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
            while True:
                try:
                    await connection.execute(pragma)
                    break
                except sqlite3.OperationalError as error:
                    if not _locked(error) or time.monotonic() > deadline:
                        raise
                await asyncio.sleep(LOCKED_RETRY_SECONDS)
    except BaseException:
        await connection.close()
        raise
    return connection


class _Writer:
    """The write connection, and the thread that commits (and waits for locks) on it,
    or, with `blocking_commit`, the loop itself."""

    def __init__(
        self, path: Path, *, blocking_commit: bool = False, migrate: MigrationMode = "auto"
    ) -> None:
        self.path = path
        self.blocking_commit = blocking_commit
        self.migrate: MigrationMode = migrate
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dlrhub-sqlite-writer")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> SchemaReport:
        try:
            return await self._call(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    async def close(self) -> None:
        try:
            await self._call(self._disconnect)
        finally:
            self._executor.shutdown(wait=False)

    async def transact(self, transaction: Transaction[T]) -> T:
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("the store is not open")
        await self._begin(db)
        try:
            result = run_transaction(transaction, functools.partial(_run_statement, db))
            await self._slow(functools.partial(db.execute, "COMMIT"))
        except BaseException:
            # Where the COMMIT runs, after anything it still runs there (a COMMIT whose
            # caller was cancelled goes on): never two threads on the connection at once.
            await asyncio.shield(self._slow(functools.partial(_roll_back, db)))
            raise
        return result

    async def _begin(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")  # busy_timeout is 0: answers at once
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            await self._slow(functools.partial(_begin_waiting, db))

    async def _slow(self, function: Callable[[], T]) -> T:
        """Run a call that may wait on the disk or a lock: on the loop if it may block."""
        if self.blocking_commit:
            return function()
        return await self._call(function)

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _connect(self) -> SchemaReport:
        create_private_file(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in WRITER_PRAGMAS:
                _execute_waiting(db, pragma)
            db.execute("BEGIN IMMEDIATE")  # in the thread: may wait for another writer
            try:
                schema = prepare_schema(SQLITE, self.migrate)
                report = run_transaction(schema, functools.partial(_run_statement, db))
                db.execute("COMMIT")
            except BaseException:
                _roll_back(db)
                raise
            db.execute("PRAGMA busy_timeout=0")  # from now on the loop never waits for a lock
        except BaseException:
            db.close()
            raise
        self._db = db
        return report

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _roll_back(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _begin_waiting(db: sqlite3.Connection) -> None:
    """`BEGIN IMMEDIATE`, waiting up to `BUSY_TIMEOUT_MS` for another writer (in the thread)."""
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        db.execute("BEGIN IMMEDIATE")
    finally:
        db.execute("PRAGMA busy_timeout=0")


def _run_statement(db: sqlite3.Connection, statement: Statement) -> Rows:
    if isinstance(statement, Fetch):
        return db.execute(statement.sql, statement.params).fetchall()
    if isinstance(statement, Execute):
        db.execute(statement.sql, statement.params)
    else:
        db.executemany(statement.sql, statement.rows)
    return []


class SQLiteBackend:
    errors: tuple[type[Exception], ...] = (sqlite3.Error, OSError)
    dialect = SQLITE

    def __init__(
        self, path: Path, *, blocking_commit: bool = False, migrate: MigrationMode = "auto"
    ) -> None:
        self.path = path
        self.blocking_commit = blocking_commit
        self.migrate: MigrationMode = migrate
        self.name = f"SQLite store at {path}"
        self._writer: _Writer | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> SchemaReport:
        writer = _Writer(self.path, blocking_commit=self.blocking_commit, migrate=self.migrate)
        report = await writer.open()
        self._writer = writer
        self._reader = await connect_sqlite(self.path, query_only=True)
        return report

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await writer.close()
        if reader is not None:
            await reader.close()

    async def transact(self, transaction: Transaction[T], *, writers_lock: bool = True) -> T:
        # One writer at a time whatever `writers_lock` says: SQLite's BEGIN IMMEDIATE.
        if self._writer is None:
            raise sqlite3.OperationalError("the store is not open")
        return await self._writer.transact(transaction)

    async def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._reader is None:
            raise sqlite3.OperationalError("the store is not open")
        async with self._reader.execute(sql, params) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


class SQLiteStore(SQLStore):
    """The embedded store. `open()` creates the file and schema if missing.

    `blocking_commit`: commit on the event loop, for a process that does nothing
    else (see the module docstring).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_batch: int = 512,
        on_commit: Callable[[int], None] | None = None,
        blocking_commit: bool = False,
        migrate: MigrationMode = "auto",
        place: Place | None = None,
    ) -> None:
        backend = SQLiteBackend(path, blocking_commit=blocking_commit, migrate=migrate)
        super().__init__(backend, max_batch=max_batch, on_commit=on_commit, place=place)
        self.path = path

    async def _next_page(self) -> FoldRequest:
        # The folding process reads the page from the file itself (dlrhub/store/folding.py).
        return SQLitePage(str(self.path), self.rollup_page)
