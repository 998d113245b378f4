"""`dlrhub migrate-store`: copy a SQLite store into PostgreSQL, table by table, in batches.

Every table of the schema is copied with its keys as they are (seq, ids,
cursors), so sinks resume where they were and quarantine ids stay the same.
Rows go in with `ON CONFLICT DO NOTHING`: a copy that was interrupted is
continued by running it again with `--resume` (rows already there are kept,
the rest are added). Without `--resume`, a target that holds any row is
refused: copying into a store that took callbacks of its own would mix two
histories. Both schemas are brought to this dlrhub's version first.

Afterwards the target's identity sequences are moved past the copied ids, and
the row counts of both sides are compared: fewer rows in the target is an
error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dlrhub.store.database import PostgresDatabase, SQLiteDatabase
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.sql_statements import ExecuteMany, Fetch, Transaction
from dlrhub.store.sqlite import SQLiteStore

# In this order: a quarantine entry refers to its raw callback.
TABLES = (
    "raw_callbacks",
    "events",
    "messages",
    "quarantine",
    "meta",
    "sink_cursors",
    "sink_dead_letters",
    "sink_replays",
    "sink_attempts",
    "delivery_attempts",
    "tracked_messages",
    "request_budget",
    "tracking_pauses",
    "tracking_bad_answers",
    "callback_counts",
    "delivery_facts",
    "delivery_rollups",
    "delivery_histograms",
    "delivery_reasons",
    "engagement_rollups",
    "alerts",  # their history; the evaluator's samples and lease are not worth keeping
)
# Not copied: who holds which sink's or the alerts' lease and which workers live are the
# running processes' (the target starts with none); the schema version is the target's
# own; the alert evaluator's samples only compare with a window ago.
NOT_COPIED = (
    "sink_leases",
    "sink_workers",
    "schema_migrations",
    "alert_samples",
    "alert_leases",
)
# Tables whose `id` PostgreSQL numbers itself: its sequence must follow the copied ids.
IDENTITY_TABLES = (
    "sink_dead_letters",
    "sink_replays",
    "delivery_attempts",
    "tracked_messages",
    "alerts",
)
BATCH = 2_000
PROGRESS_EVERY_SECONDS = 2.0


class CopyRefused(Exception):
    """The copy cannot start or did not copy everything; the message says why."""


async def copy_store(
    source_path: Path,
    dsn: str,
    schema: str,
    *,
    resume: bool = False,
    batch: int = BATCH,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, tuple[int, int]]:
    """Copy every table; answers {table: (source rows, target rows)}."""
    for store in (
        SQLiteStore(source_path, migrate="auto"),
        PostgresStore(dsn, schema=schema, migrate="auto"),
    ):
        await store.open()  # brings its schema to this version
        await store.close()
    source = SQLiteDatabase(source_path)
    target = PostgresDatabase(dsn, schema)
    await source.open()
    try:
        await target.open()
        try:
            return await _copy(source, target, schema, resume, batch, progress)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(
    source: SQLiteDatabase,
    target: PostgresDatabase,
    schema: str,
    resume: bool,
    batch: int,
    progress: Callable[[str], None],
) -> dict[str, tuple[int, int]]:
    if not resume:
        held = {table: await _count(target, table) for table in TABLES}
        if any(held.values()):
            found = ", ".join(f"{table} {count:,}" for table, count in held.items() if count)
            raise CopyRefused(
                f"the target schema {schema} already holds rows ({found}); pass --resume to"
                " continue an interrupted copy (rows already there are kept)"
            )
    counts: dict[str, tuple[int, int]] = {}
    for table in TABLES:
        columns = await _common_columns(source, target, table)
        total = await _count(source, table)
        copied, after, last_line = 0, 0, time.monotonic()
        listed = ", ".join(columns)
        insert = (
            f"INSERT INTO {table} ({listed}) VALUES ({','.join('?' * len(columns))})"  # noqa: S608
            " ON CONFLICT DO NOTHING"
        )
        while rows := await source.read(
            f"SELECT rowid, {listed} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",  # noqa: S608
            [after, batch],
        ):
            await target.transact(_insert(insert, [row[1:] for row in rows]))
            copied += len(rows)
            after = int(rows[-1][0])
            if time.monotonic() - last_line >= PROGRESS_EVERY_SECONDS:
                last_line = time.monotonic()
                progress(f"{table}: {copied:,} of {total:,} rows copied")
        if table in IDENTITY_TABLES:
            await target.transact(_follow_identity(table))
        counts[table] = (total, await _count(target, table))
        progress(f"{table}: {copied:,} rows copied (source {total:,}, target {counts[table][1]:,})")
    short = [table for table, (mine, theirs) in counts.items() if theirs < mine]
    if short:
        raise CopyRefused(f"the target has fewer rows than the source in: {', '.join(short)}")
    return counts


def _insert(sql: str, rows: list[tuple[object, ...]]) -> Transaction[None]:
    yield ExecuteMany(sql, rows)


def _follow_identity(table: str) -> Transaction[None]:
    """Move the sequence behind `id` past the copied ids: the next insert numbers after them."""
    yield Fetch(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id))"  # noqa: S608
        f" FROM {table} HAVING max(id) IS NOT NULL"
    )


async def _count(database: SQLiteDatabase | PostgresDatabase, table: str) -> int:
    rows = await database.read(f"SELECT count(*) FROM {table}")  # noqa: S608
    return int(rows[0][0])


async def _common_columns(
    source: SQLiteDatabase, target: PostgresDatabase, table: str
) -> list[str]:
    """The table's columns both sides have (both are at this dlrhub's schema version)."""
    mine = [str(row[1]) for row in await source.read(f"PRAGMA table_info({table})")]
    rows = await target.read(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        [table],
    )
    theirs = {str(row[0]) for row in rows}
    return [column for column in mine if column in theirs]
