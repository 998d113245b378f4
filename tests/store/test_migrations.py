"""Versioned schema: from empty, from the schema that landed before versions, twice,
and against a newer schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from dlrhub.cli import main
from dlrhub.event import Status, format_time
from dlrhub.store import Accept, EventFilter, SQLStore
from dlrhub.store.base import MessageSearch
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.dialect import POSTGRES, SQLITE
from dlrhub.store.message_search import search_statement
from dlrhub.store.migrations import (
    EVENT_LOG,
    LATEST,
    MIGRATIONS,
    SINK_STATE,
    TRACKING,
    SchemaError,
    prepare_schema,
)
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.sql_statements import Execute, ExecuteMany, Fetch, Transaction
from dlrhub.store.sqlite import SQLiteStore
from tests.payloads import T0, raw, status_event
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


def version_4_with_messages(dialect_name: str) -> Callable[[], Transaction[None]]:
    """The schema at version 4, holding messages written before `recipient_rev` existed."""
    dialect = SQLITE if dialect_name == "sqlite" else POSTGRES

    def transaction() -> Transaction[None]:
        yield from prepare_schema(dialect, "auto", MIGRATIONS[:4])
        yield ExecuteMany(
            "INSERT INTO messages (provider, message_id, source, status, rank, ordering_us,"
            " last_seq, recipient) VALUES ('nrs360', ?, 'nrs360', 'sent', 1, 0, ?, ?)",
            [
                (f"m{number}", number, recipient)
                for number, recipient in enumerate(
                    ["+57 300 123-4567", None, "3001234567", "no digits"] * 3000
                )
            ],
        )

    return transaction


async def test_version_4_is_migrated_and_its_messages_are_found_by_recipient(
    backend: Backend,
) -> None:
    await backend.run(version_4_with_messages(backend.name))
    store = backend.store(migrate="auto")
    await store.open()
    try:
        assert store.schema is not None
        assert store.schema.applied == [m.version for m in MIGRATIONS if m.version > 4]
        found = await store.search_messages(MessageSearch(recipient="4567", limit=500))
        assert len(found) == 500 and found[0].message_id == "m11998"  # newest first
        assert found[0].recipient == "3001234567" and found[1].recipient == "+57 300 123-4567"
        full = await store.search_messages(MessageSearch(recipient="+573001234567", limit=500))
        assert len(full) == 500 and {state.recipient for state in full} == {"+57 300 123-4567"}
    finally:
        await store.close()
    database = backend.database()
    await database.open()
    try:
        rows = await database.read(
            "SELECT recipient_rev, count(*) FROM messages GROUP BY recipient_rev"
            " ORDER BY recipient_rev"
        )
    finally:
        await database.close()
    assert sorted(rows, key=str) == sorted(
        [("", 3000), ("7654321003", 3000), ("765432100375", 3000), (None, 3000)], key=str
    )


# Every search shape, the index SQLite is told to walk, and the one PostgreSQL must pick
# (None: any index, never a table scan). PostgreSQL, which has statistics, may walk
# `last_seq` backwards for a value that a fifth or more of the messages have: as few
# rows to read for a page.
PLANNED: list[tuple[MessageSearch, str, str | None]] = [
    (MessageSearch(), "messages_by_last_seq", "messages_by_last_seq"),
    (MessageSearch(before_seq=5_000), "messages_by_last_seq", "messages_by_last_seq"),
    (MessageSearch(message_id="m77"), "messages_by_message_id", "messages_by_message_id"),
    (MessageSearch(correlation_id="ref-77"), "messages_by_correlation", "messages_by_correlation"),
    (MessageSearch(recipient="1234"), "messages_by_recipient_rev", "messages_by_recipient_rev"),
    (
        MessageSearch(recipient="+573000001234"),
        "messages_by_recipient_rev",
        "messages_by_recipient_rev",
    ),
    (MessageSearch(recipient="9999"), "messages_by_recipient_rev", "messages_by_recipient_rev"),
    (MessageSearch(status="failed"), "messages_by_status", None),
    (MessageSearch(provider="uvox"), "messages_by_provider", None),
    (MessageSearch(source="acme"), "messages_by_source", None),  # 6 messages in 7
    (MessageSearch(source="nobody"), "messages_by_source", "messages_by_source"),
    (MessageSearch(provider="nobody", status="failed"), "messages_by_status", None),
    (
        MessageSearch(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)),
        "messages_by_last_seq",
        None,
    ),
    (
        MessageSearch(since=T0 + timedelta(hours=1), before_seq=9_000),
        "messages_by_last_seq",
        None,
    ),
    (
        MessageSearch(status="failed", recipient="1234", provider="uvox"),
        "messages_by_recipient_rev",
        "messages_by_recipient_rev",
    ),
    (
        MessageSearch(message_id="m77", status="failed", before_seq=100),
        "messages_by_message_id",
        "messages_by_message_id",
    ),
]
PLANNED_MESSAGES = 20_000


def many_messages(count: int) -> Transaction[None]:
    """`count` messages, one event each a second apart, as the store writes them."""
    statuses = ("sent", "delivered", "failed", "delivered", "delivered")
    events, messages = [], []
    for seq in range(1, count + 1):
        received = format_time(T0 + timedelta(seconds=seq))
        recipient = f"+57300{seq:07d}"
        status = statuses[seq % len(statuses)]
        provider = ("nrs360", "uvox", "onurix")[seq % 3]
        events.append(
            (seq, f"e{seq}", provider, "message.status", status, f"m{seq}", b"{}", received)
        )
        messages.append(
            (
                provider,
                f"m{seq}",
                "acme" if seq % 7 else "nrs360",
                status,
                seq,
                recipient,
                f"ref-{seq}" if seq % 2 else None,
                recipient[1:][::-1],
            )
        )
    yield ExecuteMany(
        "INSERT INTO events (seq, id, source, provider, type, status, message_id, doc,"
        " received_at) VALUES (?, ?, 'acme', ?, ?, ?, ?, ?, ?)",
        events,
    )
    yield ExecuteMany(
        "INSERT INTO messages (provider, message_id, source, status, rank, ordering_us,"
        " last_seq, recipient, correlation_id, recipient_rev)"
        " VALUES (?, ?, ?, ?, 1, 0, ?, ?, ?, ?)",
        messages,
    )


async def test_every_message_search_walks_an_index(backend: Backend) -> None:
    store = backend.store()
    await store.open()
    await store.close()
    database = backend.database()
    await database.open()
    try:
        await database.transact(many_messages(PLANNED_MESSAGES))
        await database.transact(_analyze())
        for query, index, postgres_index in PLANNED:
            statement = search_statement(query, database.dialect)
            explain = "EXPLAIN" if backend.name == "postgres" else "EXPLAIN QUERY PLAN"
            rows = await database.read(f"{explain} {statement.sql}", statement.params)
            plan = "\n".join(" ".join(str(column) for column in row) for row in rows)
            assert statement.index == index
            expected = postgres_index if backend.name == "postgres" else index
            if expected is not None:
                assert expected in plan, (query, plan)
            if backend.name == "postgres":
                assert "Seq Scan" not in plan, (query, plan)
            else:
                scans = [line for line in plan.splitlines() if " SCAN " in f" {line} "]
                assert all("INDEX" in line for line in scans), (query, plan)
            if query.since is not None:
                assert "events_by_received_seq" in plan, (query, plan)
    finally:
        await database.close()


def _analyze() -> Transaction[None]:
    yield Execute("ANALYZE")


def test_versions_are_listed_in_order_without_a_gap() -> None:
    """`LATEST` is the last one listed, and pending steps run in list order."""
    assert [migration.version for migration in MIGRATIONS] == list(range(1, LATEST + 1))
