"""PostgreSQL backend, through asyncpg: the scale-out store.

Several `dlrhub serve` processes (behind one load balancer) share one database.
Each has its own group-commit writer; their write transactions are serialized
by a transaction-level advisory lock, which is what keeps `seq` both unique and
in commit order across processes. Commits are durable with PostgreSQL's default
`synchronous_commit = on`. Tables live in their own schema (`store.schema`,
default `dlrhub`), created if missing.

A connection on which anything failed is never used again: it is terminated
(the writer's, or the pool's reader) and the next batch or read opens a fresh
one. Why not trust `is_closed()`: after `pg_terminate_backend` asyncpg reads
the server's FATAL before the socket's end, and a query sent in between fails
with `InternalClientError` ("another operation is in progress") on a
connection that still looks open. So that failure, like any lost connection,
answers `StoreUnavailable` (503 to the provider, who retries), never a 500.
`application_name` (default `dlrhub`; one in the DSN wins) names the
connections in `pg_stat_activity`.

A commit that stored events sends `NOTIFY dlrhub_events, '<last seq>'` (it
reaches listeners when the transaction commits), so that sink workers wake at
once instead of polling the table (`dlrhub/store/notifications.py`).

PostgreSQL text cannot hold NUL characters, which a provider's payload may
carry: in text columns (message id, recipient, quarantine reason, ...) a NUL is
stored as U+FFFD, and query parameters get the same treatment, so lookups still
match. The event document itself (`doc`, bytes) keeps every character exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from dlrhub.analytics.facts import Place
from dlrhub.redact import redact_dsn
from dlrhub.store.dialect import POSTGRES
from dlrhub.store.migrations import MigrationMode, SchemaReport, prepare_schema
from dlrhub.store.sql import INSERT_EVENT, SQLStore
from dlrhub.store.sql_statements import (
    Execute,
    ExecuteMany,
    Fetch,
    Rows,
    Statement,
    T,
    Transaction,
    run_transaction_async,
)

# Any constant works; it only has to be the same for every dlrhub writer.
WRITER_LOCK = 0x646C7268  # "dlrh"
# Below the sink workers' default lease (15 s): see `session_settings`.
IDLE_IN_TRANSACTION_TIMEOUT = "5s"
CONNECT_TIMEOUT_SECONDS = 10.0
# A commit that stored events notifies this channel with its last seq (one per database).
EVENTS_CHANNEL = "dlrhub_events"
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...` (our SQL has no `?` in literals)."""
    parts = sql.split("?")
    return "".join(
        part + (f"${index}" if index < len(parts) else "")
        for index, part in enumerate(parts, start=1)
    )


def without_nul(params: Sequence[Any]) -> list[Any]:
    """PostgreSQL text holds no NUL: U+FFFD instead, also in array parameters (`= any(?)`,
    `unnest(?)`), so that a key looked up is the key stored."""
    return [
        [_without_nul(item) for item in value] if isinstance(value, list) else _without_nul(value)
        for value in params
    ]


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


async def fetch_rows(
    connection: asyncpg.Connection | PoolConnectionProxy, sql: str, params: Sequence[Any]
) -> Rows:
    rows = await connection.fetch(numbered(sql), *without_nul(params))
    return [tuple(row) for row in rows]


async def run_statement(
    connection: asyncpg.Connection | PoolConnectionProxy, statement: Statement
) -> Rows:
    if isinstance(statement, Fetch):
        return await fetch_rows(connection, statement.sql, statement.params)
    if isinstance(statement, Execute):
        await connection.execute(numbered(statement.sql), *without_nul(statement.params))
    else:
        rows = [without_nul(row) for row in statement.rows]
        await connection.executemany(numbered(statement.sql), rows)
    return []


def session_settings(dsn: str, schema: str | None) -> dict[str, str]:
    """The server settings of every dlrhub connection that runs transactions.

    `application_name` names them (unless the DSN does). The idle-in-transaction
    timeout ends the session of a process cut off in the middle of a transaction:
    otherwise the server keeps its locks (the writers' lock, a sink's cursor row)
    until TCP gives up, hours later, and every receiver's commit, or the worker
    taking over the sink, waits for it. dlrhub never idles inside a transaction:
    between two statements there is only a little Python.
    """
    given = parse_qs(urlsplit(dsn).query)
    settings = {} if "application_name" in given else {"application_name": "dlrhub"}
    settings["idle_in_transaction_session_timeout"] = IDLE_IN_TRANSACTION_TIMEOUT
    if schema is not None:
        settings["search_path"] = schema
    return settings


def terminate_pooled(connection: PoolConnectionProxy) -> None:
    """Never use a pool's `connection` again; if the pool was closed under it, it is gone."""
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


class PostgresBackend:
    dialect = POSTGRES
    errors: tuple[type[Exception], ...] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,  # a terminated backend, seen half-way (module docstring)
        OSError,
        TimeoutError,
    )

    def __init__(
        self, dsn: str, schema: str = "dlrhub", *, migrate: MigrationMode = "check"
    ) -> None:
        if not SCHEMA_NAME.match(schema):
            raise ValueError(f"{schema!r} is not a plain lower-case schema name")
        self.dsn = dsn
        self.schema = schema
        self.migrate: MigrationMode = migrate
        self.name = f"PostgreSQL store at {redact_dsn(dsn)} (schema {schema})"
        self._writer: asyncpg.Connection | None = None
        self._readers: asyncpg.Pool | None = None

    async def open(self) -> SchemaReport:
        setup = await self._connect(with_schema=False)
        try:
            async with setup.transaction():
                # Two processes starting at once must not race on CREATE SCHEMA or TABLE.
                await setup.execute("SELECT pg_advisory_xact_lock($1)", WRITER_LOCK)
                await setup.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                await setup.execute(f"SET LOCAL search_path TO {self.schema}")
                run = functools.partial(run_statement, setup)
                report = await run_transaction_async(prepare_schema(POSTGRES, self.migrate), run)
        finally:
            await setup.close()
        self._writer = await self._connect()
        self._readers = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=4,
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings=session_settings(self.dsn, self.schema),
        )
        return report

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(*self.errors):
                await self._writer.close(timeout=5)
        if self._readers is not None:
            try:  # a connection frozen by a partition must not hold the stop up
                await asyncio.wait_for(self._readers.close(), 5)
            except TimeoutError:
                self._readers.terminate()
            except self.errors:
                pass
        self._writer = self._readers = None

    async def transact(self, transaction: Transaction[T], *, writers_lock: bool = True) -> T:
        if self._writer is None or self._writer.is_closed():
            self._writer = await self._connect()
        connection = self._writer
        stored = 0  # the last seq the transaction inserted, for the notification

        async def run(statement: Statement) -> Rows:
            nonlocal stored
            if isinstance(statement, ExecuteMany) and statement.sql is INSERT_EVENT:
                stored = max([stored, *(int(row[0]) for row in statement.rows)])
            return await run_statement(connection, statement)

        try:
            # BEGIN with the lock, and the notification with COMMIT: one round trip each
            # (simple queries of constants), not two; a batch's commit waits for each.
            if writers_lock:
                await connection.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})")
            else:  # rolling up: its own lock (dlrhub/store/rollups.py), ingest goes on
                await connection.execute("BEGIN")
            result = await run_transaction_async(transaction, run)
            if stored:  # sent at commit: sink workers wake (dlrhub/store/notifications.py)
                await connection.execute(
                    f"SELECT pg_notify('{EVENTS_CHANNEL}', '{stored}'); COMMIT"
                )
            else:
                await connection.execute("COMMIT")
            return result
        except BaseException:
            self._writer = None  # the next batch connects afresh
            connection.terminate()
            raise

    async def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._readers is None:
            raise asyncpg.InterfaceError("the store is not open")
        async with self._readers.acquire() as connection:
            try:
                return await fetch_rows(connection, sql, params)
            except BaseException:
                terminate_pooled(connection)  # the pool replaces it on a later acquire
                raise

    async def _connect(self, *, with_schema: bool = True) -> asyncpg.Connection:
        settings = session_settings(self.dsn, self.schema if with_schema else None)
        connection: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=settings
        )
        return connection


class PostgresStore(SQLStore):
    """The shared store for several receivers and workers."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "dlrhub",
        max_batch: int = 512,
        on_commit: Callable[[int], None] | None = None,
        migrate: MigrationMode = "check",
        place: Place | None = None,
    ) -> None:
        backend = PostgresBackend(dsn, schema, migrate=migrate)
        super().__init__(backend, max_batch=max_batch, on_commit=on_commit, place=place)
