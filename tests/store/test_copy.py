"""`dlrhub migrate-store`: a SQLite store copied into PostgreSQL, whole, and resumable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from dlrhub.cli import main
from dlrhub.config import load_config
from dlrhub.sinks.service import SinkService
from dlrhub.store import Accept, Drop, Quarantine, SQLiteStore
from dlrhub.store.copy import NOT_COPIED, TABLES
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.store.test_retention import callback, count, event, execute, set_cursor
from tests.waiting import eventually

NOW = datetime.now(UTC)
CURSOR = 20  # the sink delivered events 1..20 of 30


async def fill_sqlite(path: Path) -> None:
    """Events, quarantine (one entry dropped), a sink cursor, dead letters, tracking."""
    store = SQLiteStore(path)
    await store.open()
    for number in range(6):
        raw = callback(f"callback-{number}", NOW)
        await store.write(Accept(raw, [event(f"m{number % 3}", NOW) for _ in range(5)]))
    kept = await store.write(Quarantine(callback("bad-1", NOW), "unreadable"))
    dropped = await store.write(Quarantine(callback("bad-2", NOW), "unreadable"))
    assert dropped.quarantine_id is not None and kept.quarantine_id is not None
    await store.write(Drop(dropped.quarantine_id))
    await store.close()
    database = SQLiteDatabase(path)
    await database.open()
    await set_cursor(database, "file", CURSOR)
    await database.transact(
        execute(
            "INSERT INTO sink_dead_letters (sink, seq, event_id, doc, error, attempts,"
            " created_at, updated_at) VALUES ('file', 3, 'e3', ?, 'answered 400', 1, 'x', 'x')",
            b"{}",
        )
    )
    await database.transact(
        execute(
            "INSERT INTO sink_replays (sink, after_seq, until_seq, created_at)"
            " VALUES ('other', 0, 5, 'x')"
        )
    )
    for number in range(3):
        await database.transact(
            execute(
                "INSERT INTO tracked_messages (account, provider, message_id, channel, created_us)"
                " VALUES ('acme', 'nrs360', ?, 'sms', 1)",
                f"tracked-{number}",
            )
        )
    await database.transact(execute("INSERT INTO request_budget VALUES ('acme', 5)"))
    await database.transact(execute("INSERT INTO tracking_pauses VALUES ('acme', 'auth', 1, 2)"))
    await database.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


async def counts(database: Database) -> dict[str, int]:
    return {table: await count(database, f"SELECT count(*) FROM {table}") for table in TABLES}  # noqa: S608


def migrate_store(
    path: Path, schema: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    code = main(
        ["migrate-store", "--from", f"sqlite:{path}", "--to", POSTGRES_DSN, "--schema", schema,
         "--data-dir", str(path.parent), *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_migrate_store_copies_every_row_and_a_sink_resumes_where_it_was(
    tmp_path: Path, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dlrhub.sqlite3"
    await fill_sqlite(path)
    code, out = await asyncio.to_thread(migrate_store, path, schema, capsys)
    assert code == 0, out
    assert "events: 30 rows copied (source 30, target 30)" in out

    source, target = SQLiteDatabase(path), PostgresDatabase(POSTGRES_DSN, schema)
    await source.open()
    await target.open()
    try:
        expected = await counts(source)
        assert expected["events"] == 30 and expected["tracked_messages"] == 3
        assert await counts(target) == expected
        cursor_sql = "SELECT after_seq FROM sink_cursors WHERE sink = 'file'"
        assert await target.read(cursor_sql) == [(CURSOR,)]
        dropped_sql = "SELECT value FROM meta WHERE key = 'quarantine_last_dropped'"
        assert await target.read(dropped_sql) == await source.read(dropped_sql)
        # PostgreSQL numbers new rows after the copied ones.
        await target.transact(
            execute(
                "INSERT INTO tracked_messages (account, provider, message_id, channel,"
                " created_us) VALUES ('acme', 'nrs360', 'new', 'sms', 1)"
            )
        )
        assert await target.read("SELECT max(id) FROM tracked_messages") == [(4,)]
        await target.transact(execute("DELETE FROM tracked_messages WHERE message_id = 'new'"))

        # A second copy into a target with rows is refused, unless resumed; resuming adds nothing.
        code, out = await asyncio.to_thread(migrate_store, path, schema, capsys)
        assert code == 1 and "already holds rows" in out and "--resume" in out
        code, out = await asyncio.to_thread(migrate_store, path, schema, capsys, "--resume")
        assert code == 0, out
        assert await counts(target) == expected
    finally:
        await source.close()
        await target.close()


async def test_a_sink_on_the_copied_store_delivers_only_what_followed_its_cursor(
    tmp_path: Path, schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old" / "dlrhub.sqlite3"
    path.parent.mkdir()
    await fill_sqlite(path)
    code, out = await asyncio.to_thread(migrate_store, path, schema, capsys)
    assert code == 0, out
    delivered = tmp_path / "delivered.jsonl"
    config_file = tmp_path / "dlrhub.toml"
    config_file.write_text(
        f'data_dir = "{tmp_path / "new"}"\n'
        f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
        f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{delivered}"\n'
    )
    service = SinkService(load_config(config_file, env={}), poll_interval=0.01)
    await service.start()
    try:
        lines = lambda: delivered.read_bytes().splitlines() if delivered.exists() else []  # noqa: E731
        await asyncio.to_thread(eventually, lambda: len(lines()) >= 30 - CURSOR, 20, "deliveries")
    finally:
        await service.stop()
    seqs = sorted(orjson.loads(line)["seq"] for line in lines())
    assert seqs == list(range(CURSOR + 1, 31))


def test_migrate_store_refuses_what_it_cannot_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data-dir", str(tmp_path)]
    assert main(["migrate-store", "--from", "mysql://x", "--to", POSTGRES_DSN, *common]) == 2
    assert "--from must be sqlite:PATH" in capsys.readouterr().err
    missing = f"sqlite:{tmp_path / 'none.sqlite3'}"
    assert main(["migrate-store", "--from", missing, "--to", POSTGRES_DSN, *common]) == 2
    assert "no SQLite store at" in capsys.readouterr().err


async def test_every_table_of_the_schema_is_copied(tmp_path: Path) -> None:
    """A table added by a migration and left out of TABLES would be lost by a move.

    It found the durable retry counts (`sink_attempts`, issue 14) left behind.
    """
    store = SQLiteStore(tmp_path / "store.sqlite3")
    await store.open()
    await store.close()
    database = SQLiteDatabase(tmp_path / "store.sqlite3")
    await database.open()
    try:
        rows = await database.read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    finally:
        await database.close()
    assert {str(name) for (name,) in rows} - set(NOT_COPIED) == set(TABLES)
