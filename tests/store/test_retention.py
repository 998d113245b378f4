"""Retention on both backends: old rows go, what is still needed stays."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dlrhub.config import ConfigErrors, load_config
from dlrhub.event import Event, EventType, RawCallback, Status, format_time
from dlrhub.store import Accept, EventFilter, Quarantine, Reprocess, SQLiteStore, SQLStore
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.retention import HeldSink, Pruner, RetentionConfig
from dlrhub.store.sink_state import DeliveryAttempt
from dlrhub.store.sink_state_sql import SQLSinkState
from dlrhub.store.sql_statements import Execute, Transaction
from tests.postgres import POSTGRES_DSN, fresh_schema

DAY = 86_400.0
NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=30)  # the pruner's clock: what the store wrote "now" is 30d old
RETENTION = RetentionConfig(
    events=5 * DAY,
    raw_callbacks=DAY,
    quarantine=5 * DAY,
    dead_letters=5 * DAY,
    tracking=5 * DAY,
    alerts=5 * DAY,
)


@dataclass
class Backend:
    store: SQLStore
    database: Database
    name: str


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with _backend(request.param, tmp_path) as opened:
        yield opened


class _backend:
    def __init__(self, name: str, tmp_path: Path) -> None:
        self.name, self.tmp_path = name, tmp_path
        self.schema: Any = None

    async def __aenter__(self) -> Backend:
        store: SQLStore
        database: Database
        if self.name == "sqlite":
            path = self.tmp_path / "store.sqlite3"
            store, database = SQLiteStore(path), SQLiteDatabase(path)
        else:
            self.schema = fresh_schema()
            schema = await self.schema.__aenter__()
            store = PostgresStore(POSTGRES_DSN, schema=schema, migrate="auto")
            database = PostgresDatabase(POSTGRES_DSN, schema)
        await store.open()
        await database.open()
        self.opened = Backend(store, database, self.name)
        return self.opened

    async def __aexit__(self, *exc: object) -> None:
        await self.opened.database.close()
        await self.opened.store.close()
        if self.schema is not None:
            await self.schema.__aexit__(None, None, None)


def callback(body: str, received_at: datetime) -> RawCallback:
    return RawCallback(
        source="nrs360",
        provider="nrs360",
        kind="events",
        method="POST",
        query="",
        content_type="application/x-www-form-urlencoded",
        body=body.encode(),
        received_at=received_at,
    )


def event(message_id: str, received_at: datetime) -> Event:
    return Event(
        id=f"ev-{uuid.uuid4().hex}",
        source="nrs360",
        provider="nrs360",
        type=EventType.MESSAGE_STATUS,
        received_at=received_at,
        message_id=message_id,
        status=Status.DELIVERED,
    )


async def store_callback(store: SQLStore, body: str, age_days: float) -> int:
    """A callback received `age_days` before the pruner's clock, with one event; its seq."""
    moment = LATER - timedelta(days=age_days)
    result = await store.write(Accept(callback(body, moment), [event(body, moment)]))
    assert result.outcome == "stored"
    return result.events[0].seq


def execute(sql: str, *params: Any) -> Transaction[None]:
    yield Execute(sql, params)


async def set_cursor(
    database: Database, sink: str, after_seq: int, disabled: str | None = None
) -> None:
    await database.transact(
        execute(
            "INSERT INTO sink_cursors (sink, after_seq, disabled_reason, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (sink) DO UPDATE SET after_seq = excluded.after_seq,"
            " disabled_reason = excluded.disabled_reason",
            sink,
            after_seq,
            disabled,
            format_time(NOW),
        )
    )


async def count(database: Database, sql: str, *params: Any) -> int:
    rows = await database.read(sql, params)
    return int(rows[0][0])


async def seqs(store: SQLStore) -> list[int]:
    return [stored.seq for stored in await store.events(EventFilter(limit=1000))]


async def test_prune_deletes_old_rows_and_keeps_what_is_still_needed(backend: Backend) -> None:
    store, database = backend.store, backend.database
    delivered_old = await store_callback(store, "old", 20)  # goes, with its raw callback
    recent_event = await store_callback(store, "six-days", 6)  # event goes, dedupe key stays
    young = await store_callback(store, "young", 1)  # stays
    quarantined = await store.write(Quarantine(callback("bad", LATER - timedelta(days=20)), "x"))
    resolved = await store.write(Quarantine(callback("fixed", LATER - timedelta(days=20)), "y"))
    assert resolved.quarantine_id is not None and quarantined.quarantine_id is not None
    reprocessed = await store.write(
        Reprocess(resolved.quarantine_id, [event("fixed", LATER - timedelta(days=20))])
    )
    cursor = reprocessed.events[0].seq
    undelivered_old = await store_callback(store, "old-undelivered", 20)  # after the cursor
    await set_cursor(database, "hook", cursor)
    await set_cursor(database, "gone", 0, disabled="too many failures")  # holds nothing
    for state, age in (("dead", 20), ("retry", 20), ("dead", 1)):
        updated = format_time(LATER - timedelta(days=age))
        await database.transact(
            execute(
                "INSERT INTO sink_dead_letters (sink, seq, event_id, doc, error, attempts, state,"
                " created_at, updated_at) VALUES ('hook', 1, 'e', ?, 'boom', 3, ?, ?, ?)",
                b"{}",
                state,
                updated,
                updated,
            )
        )
    for number, stopped_days in enumerate((20, 1, None)):
        stopped = (
            None
            if stopped_days is None
            else int((LATER - timedelta(days=stopped_days)).timestamp() * 1_000_000)
        )
        await database.transact(
            execute(
                "INSERT INTO tracked_messages (account, provider, message_id, channel, created_us,"
                " stopped_us) VALUES ('acme', 'nrs360', ?, 'sms', 0, ?)",
                f"m{number}",
                stopped,
            )
        )
    for number, (state, days) in enumerate((("resolved", 20), ("resolved", 1), ("open", 20))):
        at = int((LATER - timedelta(days=days)).timestamp() * 1_000_000)
        await database.transact(
            execute(
                "INSERT INTO alerts (rule, kind, group_key, state, opened_us, resolved_us,"
                " message) VALUES ('low', 'delivery_rate_below', ?, ?, ?, ?, 'm')",
                f"g{number}",
                state,
                at - 3_600_000_000,  # opened an hour before
                at if state == "resolved" else None,
            )
        )

    pruner = Pruner(database, RETENTION, [HeldSink("hook", True), HeldSink("gone", True)])
    pruner.clock = lambda: LATER
    report = await pruner.run_pass()

    deleted = {kind.kind: kind.deleted for kind in report.kinds}
    # events: the old delivered one, the 6-day one, the reprocessed one (20 d, delivered)
    assert deleted == {
        "events": 3,
        "delivery_attempts": 0,  # none made here: see test_delivery_attempts_go_with_their_events
        "quarantine": 1,
        "dead_letters": 1,
        "tracking": 1,
        "alerts": 1,  # resolved 20 days ago; the recent one and the open one stay
        "raw_callbacks": 2,  # "old" and "fixed": their events and entry are gone
        # The 20-day-old minute's counts (stored and quarantined), at the raw callbacks' age,
        # even those of raw callbacks still kept.
        "callback_counts": 2,
    }
    assert (report.hold, report.held_by) == (cursor, "hook")
    assert await seqs(store) == [young, undelivered_old]
    assert delivered_old not in await seqs(store) and recent_event not in await seqs(store)
    pending = await store.quarantine_entries()
    assert [entry.id for entry in pending] == [quarantined.quarantine_id]
    assert await count(database, "SELECT count(*) FROM sink_dead_letters") == 2
    assert await count(database, "SELECT count(*) FROM tracked_messages") == 2
    assert await count(database, "SELECT count(*) FROM alerts") == 2
    # The message state is not history: it stays.
    assert await store.message("nrs360", "old") is not None

    # A retry of a callback younger than retention.dedupe is still a duplicate...
    retried = await store.write(Accept(callback("six-days", NOW), [event("six-days", NOW)]))
    assert retried.outcome == "duplicate"
    # ...one older than that is stored again (its key is gone).
    again = await store.write(Accept(callback("old", NOW), [event("old", NOW)]))
    assert again.outcome == "stored"
    # A new quarantine entry never takes the id of a pruned one.
    new_entry = await store.write(Quarantine(callback("worse", NOW), "z"))
    assert new_entry.quarantine_id is not None
    assert new_entry.quarantine_id > resolved.quarantine_id

    # The metrics saw it.
    assert pruner.pruned["events"] == 3
    assert pruner.oldest_age["events"] == pytest.approx(20 * DAY, abs=60)


async def test_dry_run_deletes_nothing_and_counts_what_a_run_deletes(backend: Backend) -> None:
    store, database = backend.store, backend.database
    for number in range(25):
        await store_callback(store, f"old-{number}", 10)
    await store_callback(store, "young", 1)
    pruner = Pruner(database, replace(RETENTION, batch=4))
    pruner.clock = lambda: LATER

    dry = await pruner.run_pass(dry_run=True)
    assert len(await seqs(store)) == 26
    would = {kind.kind: kind.deleted for kind in dry.kinds}
    assert would["events"] == 25 and would["raw_callbacks"] == 25

    done = await pruner.run_pass()
    assert {kind.kind: kind.deleted for kind in done.kinds} == would
    assert len(await seqs(store)) == 1


async def test_a_sink_that_never_ran_holds_every_event(backend: Backend) -> None:
    await store_callback(backend.store, "old", 20)
    pruner = Pruner(backend.database, RETENTION, [HeldSink("new-sink", starts_at_beginning=True)])
    pruner.clock = lambda: LATER
    report = await pruner.run_pass()
    assert report.kinds[0].deleted == 0 and report.held_by == "new-sink"
    # A sink that starts at the end of the log holds nothing back.
    pruner = Pruner(backend.database, RETENTION, [HeldSink("tail", starts_at_beginning=False)])
    pruner.clock = lambda: LATER
    assert (await pruner.run_pass()).kinds[0].deleted == 1


async def test_delivery_attempts_go_with_their_events(backend: Backend) -> None:
    store, database = backend.store, backend.database
    old = [await store_callback(store, f"old-{n}", 20) for n in range(5)]
    young = await store_callback(store, "young", 1)
    state = SQLSinkState(database)
    stored = await store.events(EventFilter(limit=100))
    rows = [
        DeliveryAttempt("hook", e.seq, e.id, attempt, NOW, outcome, 1.5, None)
        for e in stored
        for attempt, outcome in ((1, "retrying"), (2, "delivered"))
    ]
    await state.record_attempts(rows)
    pruner = Pruner(database, replace(RETENTION, batch=3))  # several batches of attempts
    pruner.clock = lambda: LATER

    dry = await pruner.run_pass(dry_run=True)
    assert {kind.kind: kind.deleted for kind in dry.kinds}["delivery_attempts"] == 10
    assert await count(database, "SELECT count(*) FROM delivery_attempts") == 12

    report = await pruner.run_pass()
    deleted = {kind.kind: kind.deleted for kind in report.kinds}
    assert (deleted["events"], deleted["delivery_attempts"]) == (5, 10)
    left = await state.delivery_attempts([e.id for e in stored])
    assert [(a.seq, a.attempt) for a in left] == [(young, 1), (young, 2)]
    assert old[-1] < young
    assert pruner.pruned["delivery_attempts"] == 10

    # Without events retention, attempts are kept as long as the events are.
    assert RetentionConfig(dead_letters=DAY).age("delivery_attempts") is None


async def test_prune_under_ingest_keeps_what_is_needed_and_ingest_answers(
    backend: Backend,
) -> None:
    store, database = backend.store, backend.database
    await asyncio.gather(
        *(
            store.write(
                Accept(
                    callback(f"old-{n}", LATER - timedelta(days=20)),
                    [event(f"m-{n}", LATER - timedelta(days=20))],
                )
            )
            for n in range(1500)
        )
    )
    head = max(await seqs_after(store, 0))
    await set_cursor(database, "hook", head - 100)  # the last 100 old events: undelivered
    pruner = Pruner(database, replace(RETENTION, batch=50), [HeldSink("hook", True)])
    pruner.clock = lambda: LATER
    pruning = asyncio.create_task(pruner.run_pass())
    answers = []
    for round_number in range(20):  # ingest while the prune runs
        answers += await asyncio.gather(
            *(
                store.write(Accept(callback(f"new-{round_number}-{n}", NOW), [event("n", NOW)]))
                for n in range(25)
            )
        )
    report = await pruning
    assert {answer.outcome for answer in answers} == {"stored"}
    kept = await seqs_after(store, 0)
    assert report.kinds[0].deleted == 1400
    new = [answer.events[0].seq for answer in answers]
    assert sorted(kept) == list(range(head - 99, head + 1)) + sorted(new)


async def seqs_after(store: SQLStore, after: int) -> list[int]:
    found: list[int] = []
    while page := await store.events(EventFilter(after_seq=after, limit=1000)):
        found += [stored.seq for stored in page]
        after = page[-1].seq
    return found


async def test_two_pruners_at_once_delete_each_row_once(tmp_path: Path) -> None:
    async with _backend("postgres", tmp_path) as opened:
        for number in range(300):
            await store_callback(opened.store, f"old-{number}", 20)
        other = PostgresDatabase(POSTGRES_DSN, opened.database.schema)  # type: ignore[attr-defined]
        await other.open()
        try:
            pruners = [
                Pruner(database, replace(RETENTION, batch=20))
                for database in (opened.database, other)
            ]
            for pruner in pruners:
                pruner.clock = lambda: LATER
            reports = await asyncio.gather(*(pruner.run_pass() for pruner in pruners))
            # Whoever found the lock taken left the rest to the other: run again until done.
            while any(kind.skipped for report in reports for kind in report.kinds):
                reports = await asyncio.gather(*(pruner.run_pass() for pruner in pruners))
        finally:
            await other.close()
        assert sum(pruner.pruned["events"] for pruner in pruners) == 300
        assert sum(pruner.pruned["raw_callbacks"] for pruner in pruners) == 300
        assert await seqs(opened.store) == []


def test_dedupe_retention_shorter_than_a_day_is_a_config_error(tmp_path: Path) -> None:
    config_file = tmp_path / "dlrhub.toml"
    config_file.write_text('[retention]\ndedupe = "2h"\nevents = "90d"\n')
    with pytest.raises(ConfigErrors) as error:
        load_config(config_file, env={})
    assert "retention.dedupe: must be at least 1d" in str(error.value)
    config_file.write_text('[retention]\nevents = "90d"\n')
    config = load_config(config_file, env={})
    assert config.retention.events == 90 * DAY and config.retention.dedupe == 7 * DAY


async def test_the_background_service_prunes_and_exports_metrics(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from dlrhub.store.retention import RetentionService
    from tests.waiting import eventually_async

    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    old = datetime.now(UTC) - timedelta(days=20)
    for number in range(3):
        await store.write(Accept(callback(f"old-{number}", old), [event("m", old)]))
    service = RetentionService(SQLiteDatabase(path), replace(RETENTION, interval=0.05), [])
    registry = CollectorRegistry()
    registry.register(service.collector())
    await service.start()
    try:
        await eventually_async(
            lambda: service.pruner.pruned["raw_callbacks"] == 3, 10, "a background pass"
        )
    finally:
        await service.stop()
        await store.close()
    text = generate_latest(registry).decode()
    assert 'dlrhub_retention_pruned_rows_total{kind="events"} 3.0' in text
    assert 'dlrhub_retention_oldest_age_seconds{kind="events"} 0.0' in text
