"""Versioned schema: from empty, from the schema that landed before versions, twice,
and against a newer schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dlrhub.cli import main
from dlrhub.event import Status
from dlrhub.store import Accept, EventFilter, SQLStore
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.dialect import POSTGRES, SQLITE
from dlrhub.store.migrations import (
    EVENT_LOG,
    LATEST,
    MIGRATIONS,
    SINK_STATE,
    TRACKING,
    SchemaError,
)
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.sql_statements import Execute, Fetch, Transaction
from dlrhub.store.sqlite import SQLiteStore
from tests.payloads import raw, status_event
from tests.postgres import POSTGRES_DSN, fresh_schema

# The rows as the code before versions wrote them (no indexed event columns).
OLD_RAW = (
    "INSERT INTO raw_callbacks (id, dedupe_key, source, provider, kind, method, query,"
    " content_type, body, remote_addr, received_at) VALUES (1, 'k1', 'nrs360', 'nrs360',"
    " 'events', 'POST', '', 'application/json', ?, NULL, '2026-11-30T10:00:00.000000Z')"
)
OLD_EVENT = (
    "INSERT INTO events (seq, id, raw_id, source, provider, type, status, message_id, doc)"
    " VALUES (1, ?, 1, 'nrs360', 'nrs360', 'message.status', 'delivered', ?, ?)"
)


class Backend:
    """Stores, a raw database and a config file for one backend, all on the same data."""

    def __init__(self, name: str, tmp_path: Path, schema: str = "") -> None:
        self.name = name
        self.tmp_path = tmp_path
        self.schema = schema

    def store(self, **options: Any) -> SQLStore:
        if self.name == "sqlite":
            return SQLiteStore(self.tmp_path / "data" / "dlrhub.sqlite3", **options)
        return PostgresStore(POSTGRES_DSN, schema=self.schema, **options)

    def database(self) -> Database:
        if self.name == "sqlite":
            return SQLiteDatabase(self.tmp_path / "data" / "dlrhub.sqlite3")
        return PostgresDatabase(POSTGRES_DSN, self.schema)

    def config_file(self) -> Path:
        path = self.tmp_path / "dlrhub.toml"
        text = f'data_dir = "{self.tmp_path / "data"}"\n'
        if self.name == "postgres":
            text += (
                f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{self.schema}"\n'
            )
        path.write_text(text, encoding="utf-8")
        return path

    async def run(self, transaction: Callable[[], Transaction[None]]) -> None:
        if self.name == "postgres":  # the schema itself is what the store creates first
            connection = await asyncpg.connect(POSTGRES_DSN)
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await connection.close()
        database = self.database()
        await database.open()
        try:
            await database.transact(transaction())
        finally:
            await database.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    (tmp_path / "data").mkdir()
    if request.param == "sqlite":
        yield Backend("sqlite", tmp_path)
        return
    async with fresh_schema() as schema:
        yield Backend("postgres", tmp_path, schema)


def todays_schema(dialect_name: str) -> Callable[[], Transaction[None]]:
    """The tables and one callback as they were before versioned schemas existed."""
    dialect = SQLITE if dialect_name == "sqlite" else POSTGRES
    event = status_event("m-old", Status.DELIVERED, 3)

    def transaction() -> Transaction[None]:
        for script in (EVENT_LOG, SINK_STATE, TRACKING):
            for statement in dialect.ddl(script).split(";"):
                if statement.strip():
                    yield Execute(statement)
        yield Execute(OLD_RAW, (b"{}",))
        yield Execute(OLD_EVENT, (event.id, event.message_id, event.to_document()))

    return transaction


async def versions(backend: Backend) -> list[int]:
    database = backend.database()
    await database.open()
    try:
        rows = await database.read("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await database.close()
    return [int(version) for (version,) in rows]


async def test_an_empty_database_is_created_even_in_check_mode_and_a_second_open_is_a_no_op(
    backend: Backend,
) -> None:
    store = backend.store(migrate="check")
    await store.open()
    assert store.schema is not None
    assert (store.schema.before, store.schema.applied) == (0, [m.version for m in MIGRATIONS])
    await store.close()
    again = backend.store(migrate="auto")
    await again.open()
    assert again.schema is not None
    assert (again.schema.before, again.schema.after, again.schema.applied) == (LATEST, LATEST, [])
    await again.close()
    assert await versions(backend) == [m.version for m in MIGRATIONS]


async def test_todays_schema_is_migrated_and_its_events_get_their_indexed_columns(
    backend: Backend,
) -> None:
    await backend.run(todays_schema(backend.name))
    store = backend.store(migrate="auto")
    await store.open()
    try:
        assert store.schema is not None and store.schema.applied == [m.version for m in MIGRATIONS]
        (old,) = await store.events(EventFilter())
        result = await store.write(Accept(raw("new"), [status_event("m-new", Status.SENT, 1)]))
        assert result.outcome == "stored" and result.events[0].seq == 2
    finally:
        await store.close()
    database = backend.database()
    await database.open()
    try:
        rows = await database.read("SELECT seq, received_at, occurred_at FROM events ORDER BY seq")
    finally:
        await database.close()
    assert [row[0] for row in rows] == [1, 2]
    assert all(row[1] and row[1].endswith("Z") for row in rows)  # backfilled and written
    assert rows[0][2] == old.occurred_at.isoformat(timespec="microseconds")[:-6] + "Z"


async def test_check_mode_refuses_an_old_schema_until_dlrhub_migrate_ran(
    backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    await backend.run(todays_schema(backend.name))
    with pytest.raises(SchemaError, match="run `dlrhub migrate`"):
        await backend.store(migrate="check").open()
    config = str(backend.config_file())

    async def migrate(*args: str) -> int:  # the CLI runs its own event loop
        return await asyncio.to_thread(main, ["migrate", *args, "--config", config])

    assert await migrate("--check") == 1
    assert "dlrhub migrate" in capsys.readouterr().out
    assert await migrate() == 0
    assert f"migrated from version 0 to {LATEST}" in capsys.readouterr().out
    assert await migrate() == 0
    assert "nothing to do" in capsys.readouterr().out
    assert await migrate("--check") == 0
    store = backend.store(migrate="check")
    await store.open()
    assert len(await store.events(EventFilter())) == 1
    await store.close()


async def test_a_newer_schema_runs_if_declared_compatible_and_is_refused_otherwise(
    backend: Backend,
) -> None:
    store = backend.store()
    await store.open()
    await store.close()

    def newer(version: int, compatible: bool) -> Callable[[], Transaction[None]]:
        def transaction() -> Transaction[None]:
            yield Execute(
                "INSERT INTO schema_migrations (version, name, compatible_with_older, applied_at)"
                " VALUES (?, 'from the future', ?, '2027-01-01T00:00:00.000000Z')",
                (version, int(compatible)),
            )

        return transaction

    await backend.run(newer(LATEST + 1, True))
    store = backend.store(migrate="check")
    await store.open()
    assert store.schema is not None and store.schema.newer and store.schema.after == LATEST + 1
    await store.close()
    await backend.run(newer(LATEST + 2, False))
    with pytest.raises(SchemaError, match=f"migration {LATEST + 2} does not let older"):
        await backend.store(migrate="auto").open()


async def test_processes_starting_at_once_migrate_once(backend: Backend) -> None:
    stores = [backend.store(migrate="auto") for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    applied = [store.schema.applied for store in stores if store.schema is not None]
    assert sorted(applied, key=len) == [[], [], [], [m.version for m in MIGRATIONS]]
    for store in stores:
        await store.close()
    assert await versions(backend) == [m.version for m in MIGRATIONS]


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("recipient = ?", "events_by_recipient"),
        ("correlation_id = ?", "events_by_correlation"),
        ("received_at >= ?", "events_by_received"),
    ],
)
async def test_searches_on_the_new_columns_use_their_index(
    backend: Backend, where: str, index: str
) -> None:
    store = backend.store()
    await store.open()
    await store.close()
    database = backend.database()
    await database.open()
    try:
        if backend.name == "postgres":  # an empty table is scanned whatever the indexes
            plan = await database.transact(_plan_without_seq_scans(where))
        else:
            plan = await database.read(
                f"EXPLAIN QUERY PLAN SELECT seq FROM events WHERE {where}",  # noqa: S608
                ("x",),
            )
    finally:
        await database.close()
    assert index in " ".join(str(column) for row in plan for column in row)


def _plan_without_seq_scans(where: str) -> Transaction[list[tuple[Any, ...]]]:
    yield Execute("SET LOCAL enable_seqscan = off")
    return (yield Fetch(f"EXPLAIN SELECT seq FROM events WHERE {where}", ("x",)))  # noqa: S608
