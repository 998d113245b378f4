"""`/v1/events` filters on the indexed columns: each read starts from its index, on
SQLite and PostgreSQL, and answers the events it should in either order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dlrhub.event import Status
from dlrhub.store import Accept, EventFilter
from dlrhub.store.sql import event_query
from dlrhub.store.sql_statements import Execute, Fetch, Transaction
from tests.payloads import T0, raw, status_event
from tests.postgres import fresh_schema
from tests.store.test_migrations import Backend


@pytest.fixture(params=["sqlite", "postgres"])
async def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    (tmp_path / "data").mkdir()
    if request.param == "sqlite":
        yield Backend("sqlite", tmp_path)
        return
    async with fresh_schema() as schema:
        yield Backend("postgres", tmp_path, schema)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (EventFilter(recipient="+34600111222"), "events_by_recipient"),
        (EventFilter(correlation_id="order-1"), "events_by_correlation"),
        (EventFilter(since=T0), "events_by_received_seq"),
        (EventFilter(since=T0, until=T0 + timedelta(hours=1)), "events_by_received_seq"),
        (EventFilter(until=T0, descending=True), "events_by_received_seq"),
        (EventFilter(provider="nrs360", message_id="m-1"), "events_by_message"),
        (EventFilter(recipient="+34600111222", descending=True), "events_by_recipient"),
    ],
)
async def test_each_filter_reads_its_index(
    store_backend: Backend, query: EventFilter, index: str
) -> None:
    store = store_backend.store()
    await store.open()
    await store.close()
    sql, params = event_query(query)
    database = store_backend.database()
    await database.open()
    try:
        if store_backend.name == "postgres":  # an empty table is scanned whatever the indexes
            plan = await database.transact(_plan_without_scans(sql, params))
        else:
            plan = await database.read(f"EXPLAIN QUERY PLAN {sql}", params)
    finally:
        await database.close()
    assert index in " ".join(str(column) for row in plan for column in row)


def _plan_without_scans(sql: str, params: list[Any]) -> Transaction[list[tuple[Any, ...]]]:
    yield Execute("SET LOCAL enable_seqscan = off")
    return (yield Fetch(f"EXPLAIN {sql}", tuple(params)))


async def test_filters_and_order(store_backend: Backend) -> None:
    store = store_backend.store()
    await store.open()
    try:
        for number in range(4):
            event = status_event(f"m-{number % 2}", Status.SENT, number)
            event = msgspec.structs.replace(
                event,
                received_at=T0 + timedelta(minutes=number),
                recipient=f"+3460000000{number % 2}",
                correlation_id=f"ref-{number % 2}",
            )
            await store.write(Accept(raw(f"c{number}"), [event]))

        async def seqs(**filters: Any) -> list[int]:
            return [event.seq for event in await store.events(EventFilter(**filters))]

        assert await seqs(recipient="+34600000001") == [2, 4]
        assert await seqs(correlation_id="ref-0") == [1, 3]
        assert await seqs(since=T0 + timedelta(minutes=1)) == [2, 3, 4]
        assert await seqs(until=T0 + timedelta(minutes=1)) == [1]
        assert await seqs(descending=True, limit=3) == [4, 3, 2]
        assert await seqs(descending=True, before_seq=3) == [2, 1]
        assert await seqs(after_seq=1, before_seq=4) == [2, 3]
        callbacks = await store.callbacks_of([1, 3, 99])
        assert sorted(callbacks) == [1, 3]
        assert callbacks[1].raw.source == "nrs360" and callbacks[1].id != callbacks[3].id
    finally:
        await store.close()
