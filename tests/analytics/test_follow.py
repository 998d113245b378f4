"""Rolling up follows the log: after the answers, by itself when idle, exactly once.

The store's writer rolls up a page once it has answered a batch and has been idle
for a moment (or a page has piled up); reads catch up first. Several processes on
one PostgreSQL database share the cursor: each event is counted once, whoever
rolled it up.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path

import pytest

from dlrhub.event import Event, EventType, Status
from dlrhub.store import Accept, EventFilter, SQLiteStore, SQLStore
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.retention import DAY, Pruner, RetentionConfig
from dlrhub.store.rollups import CURSOR, ROLLUP_TABLES
from dlrhub.store.sql_statements import Execute, Transaction
from tests.analytics.model import expected_tables
from tests.analytics.stores import BACKENDS, PLACE, fresh_store, rollup_tables, store_maker
from tests.payloads import T0, raw
from tests.postgres import POSTGRES_DSN
from tests.waiting import eventually_async


def callback(number: int) -> Accept:
    message = f"m{number // 2}"
    status = Status.ACCEPTED if number % 2 == 0 else Status.DELIVERED
    event = Event(
        id=f"e{number}",
        source="nrs360",
        provider="nrs360",
        type=EventType.MESSAGE_STATUS,
        received_at=T0,
        message_id=message,
        recipient=f"+5731512{number // 2:05d}",
        status=status,
        occurred_at=T0.replace(second=number % 60),
    )
    return Accept(raw(f"cb{number}"), [event])


async def cursor(store: SQLStore) -> int:
    rows = await store.backend.read("SELECT value FROM meta WHERE key = ?", [CURSOR])
    return int(rows[0][0]) if rows else 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_writer_rolls_up_by_itself_once_idle(backend: str, tmp_path: Path) -> None:
    async with fresh_store(backend, tmp_path) as store:
        results = await asyncio.gather(*(store.write(callback(n)) for n in range(50)))
        last = max(event.seq for result in results for event in result.events)
        # Nothing reads the rollups: the writer catches up on its own when idle.
        await eventually_async(lambda: _at(store, last), 10, "the rollups to catch up")


async def _at(store: SQLStore, seq: int) -> bool:
    return await cursor(store) == seq


async def test_two_processes_on_postgres_count_each_event_once(tmp_path: Path) -> None:
    async with store_maker("postgres", tmp_path) as make:
        first, second = make(), make()
        await first.open()
        await second.open()
        try:
            for store in (first, second):
                store.rollup_page = 7  # small pages: the two interleave
            numbers = list(range(300))
            random.Random(5).shuffle(numbers)
            await asyncio.gather(
                *(random.Random(n).choice((first, second)).write(callback(n)) for n in numbers)
            )
            stored = await first.events(EventFilter(limit=1000))
            assert len(stored) == 300
            assert await rollup_tables(second) == expected_tables(stored, PLACE)
            assert await rollup_tables(first) == expected_tables(stored, PLACE)
        finally:
            await first.close()
            await second.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_retention_never_prunes_an_event_the_rollups_have_not_counted(
    backend: str, tmp_path: Path
) -> None:
    """A store whose writers never rolled up (here: the cursor and rollups reset by hand)."""
    async with fresh_store(backend, tmp_path) as store:
        results = await asyncio.gather(*(store.write(callback(n)) for n in range(40)))
        stored = sorted((e for r in results for e in r.events), key=lambda e: e.seq)
        await store.catch_up_rollups()
        expected = await rollup_tables(store)
        assert expected == expected_tables(stored, PLACE)

        def forget() -> Transaction[None]:
            for table in (*ROLLUP_TABLES, "delivery_facts"):
                yield Execute(f"DELETE FROM {table}")  # noqa: S608
            yield Execute("DELETE FROM meta WHERE key = ?", (CURSOR,))

        database = _database(store, tmp_path)
        await database.open()
        try:
            await database.transact(forget())
            pruner = Pruner(
                database,
                RetentionConfig(events=DAY),
                clock=lambda: T0 + timedelta(days=400),
                place=PLACE,
            )
            report = await pruner.run_pass()
        finally:
            await database.close()
        assert next(kind for kind in report.kinds if kind.kind == "events").deleted == 40
        assert await store.events(EventFilter()) == []
        assert await rollup_tables(store) == expected  # counted before they went


def _database(store: SQLStore, tmp_path: Path) -> Database:
    if isinstance(store, PostgresStore):
        return PostgresDatabase(POSTGRES_DSN, store.backend.schema)
    assert isinstance(store, SQLiteStore)
    return SQLiteDatabase(store.path)
