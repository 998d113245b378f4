"""A process cut off from PostgreSQL in the middle of a transaction holds nobody up for long.

The server keeps a session's locks until it ends, and a cut-off client's session ends
only when TCP gives up (hours) unless dlrhub's idle-in-transaction timeout ends it. Seen
in the scale-out test: a sink worker partitioned while its cursor row was locked kept
the worker taking over its sink from starting. Here the cut-off session is a connection
with dlrhub's own session settings that begins a transaction, locks, and goes silent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from dlrhub.store import Accept
from dlrhub.store.database import PostgresDatabase
from dlrhub.store.postgres import WRITER_LOCK, PostgresStore, session_settings
from dlrhub.store.sink_state_sql import SQLSinkState
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.store.test_retention import callback, event

WAIT = 30.0  # far above the 5 s timeout; only a session that is never ended reaches it


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    async with fresh_schema() as schema:
        store = PostgresStore(POSTGRES_DSN, schema=schema, migrate="auto")
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def cut_off(store: PostgresStore, *statements: str) -> asyncpg.Connection:
    """A dlrhub session that ran `statements` in a transaction and then went silent."""
    connection: asyncpg.Connection = await asyncpg.connect(
        POSTGRES_DSN, server_settings=session_settings(POSTGRES_DSN, store.backend.schema)
    )
    await connection.execute("BEGIN; " + "; ".join(statements))
    return connection


async def test_every_connection_has_the_idle_in_transaction_timeout(
    store: PostgresStore,
) -> None:
    database = PostgresDatabase(POSTGRES_DSN, store.backend.schema)
    await database.open()
    try:
        for rows in (
            await database.read("SHOW idle_in_transaction_session_timeout"),
            await store.backend.read("SHOW idle_in_transaction_session_timeout", []),
        ):
            assert rows == [("5s",)]
    finally:
        await database.close()


async def test_a_sink_cursor_locked_by_a_cut_off_worker_is_freed(store: PostgresStore) -> None:
    database = PostgresDatabase(POSTGRES_DSN, store.backend.schema)
    await database.open()
    try:
        state = SQLSinkState(database)
        await state.ensure("hook", start_after=0)
        silent = await cut_off(store, "UPDATE sink_cursors SET after_seq = 1 WHERE sink = 'hook'")
        started = time.monotonic()
        # The worker taking the sink over starts by ensuring its cursor row.
        taken = await asyncio.wait_for(state.ensure("hook", start_after=0), WAIT)
        print(f"freed after {time.monotonic() - started:.1f} s")
        assert taken.after_seq == 0  # the cut-off worker's move was rolled back
        # Its session was ended by the server: asyncpg says so one way or another.
        failures = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
        with pytest.raises((*failures, OSError)):
            await silent.fetch("SELECT 1")
        silent.terminate()
    finally:
        await database.close()


async def test_the_writers_lock_held_by_a_cut_off_receiver_is_freed(store: PostgresStore) -> None:
    silent = await cut_off(store, f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
    now = datetime.now(UTC)
    result = await asyncio.wait_for(
        store.write(Accept(callback("after the cut", now), [event("m1", now)])), WAIT
    )
    assert result.outcome == "stored"
    silent.terminate()
