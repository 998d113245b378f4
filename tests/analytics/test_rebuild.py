"""Rebuilding the rollups after pruning, and migration 8 filling them, on both backends."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from dlrhub.analytics.facts import DAY_US
from dlrhub.analytics.figures import DeliveryQuery, figures
from dlrhub.analytics.histogram import from_bytes, unpack
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.event import Event, EventType, Status, epoch_micros, format_time
from dlrhub.store import Accept, SQLStore
from dlrhub.store.dialect import SQLITE
from dlrhub.store.migrations import ROLLUP_SCHEMA
from dlrhub.store.sql_statements import Execute, ExecuteMany, Fetch, Transaction
from tests.analytics.model import expected_tables
from tests.analytics.stores import (
    BACKENDS,
    PLACE,
    StoreMaker,
    Tables,
    rollup_tables,
    store_maker,
)
from tests.payloads import T0, raw

KEY = "grain, period_us, provider, source, sender, channel, country, operator"

DAY0 = T0.replace(hour=0)  # four days of traffic from here
RECIPIENTS = ["3151234567", "+34612345678", "612345678", "+525512345678"]


def traffic(seed: int = 7, messages: int = 120) -> list[list[Event]]:
    """Callbacks over four days: each message accepted, then (mostly) a receipt within 20 h."""
    rng = random.Random(seed)
    callbacks: list[list[Event]] = []
    for number in range(messages):
        sent = DAY0 + timedelta(seconds=rng.randrange(4 * 86_400))
        common = {
            "source": rng.choice(["nrs360", "office"]),
            "provider": rng.choice(["nrs360", "onurix"]),
            "message_id": f"m{number}",
            "recipient": rng.choice(RECIPIENTS),
            "channel": "sms",
        }
        callbacks.append([status(f"a{number}", Status.ACCEPTED, sent, **common)])
        if rng.random() < 0.8:
            final = rng.choice([Status.DELIVERED, Status.DELIVERED, Status.FAILED, Status.EXPIRED])
            done = sent + timedelta(seconds=rng.choice([2, 40, 500, 3_000, 72_000]))
            callbacks.append([status(f"f{number}", final, done, **common)])
        if rng.random() < 0.2:
            clicked = sent + timedelta(minutes=5)
            callbacks.append([status(f"c{number}", None, clicked, **common)])
    callbacks.sort(key=lambda events: events[0].received_at)
    return callbacks


def status(event_id: str, state: Status | None, at: object, **common: str) -> Event:
    return Event(
        id=event_id,
        type=EventType.MESSAGE_STATUS if state else EventType.MESSAGE_ENGAGEMENT,
        received_at=at,  # type: ignore[arg-type]
        occurred_at=at,  # type: ignore[arg-type]
        status=state,
        provider_status=state.value if state else "click",
        **common,
    )


async def write_all(store: SQLStore, callbacks: list[list[Event]]) -> list[Event]:
    """Write each callback, then wait for the rollups (and the writer) to catch up."""
    for events in callbacks:
        callback = raw(events[0].id, events[0].source, events[0].received_at)
        assert (await store.write(Accept(callback, events))).outcome == "stored"
    await store.catch_up_rollups()
    return [event for events in callbacks for event in events]


def split(tables: Tables, boundary_us: int) -> tuple[Tables, Tables]:
    """The rows of cohorts before `boundary_us`, and from it on."""
    before = {
        name: {k: v for k, v in rows.items() if k[1] < boundary_us} for name, rows in tables.items()
    }
    after = {
        name: {k: v for k, v in rows.items() if k[1] >= boundary_us}
        for name, rows in tables.items()
    }
    return before, after


def delete_events_received_before(moment: object) -> Transaction[None]:
    """What retention does to old events (by received_at), without its sink holds."""
    yield Execute("DELETE FROM events WHERE received_at < ?", (format_time(moment),))  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rebuild_after_pruning_recomputes_only_whole_kept_days(
    backend: str, tmp_path: Path
) -> None:
    """Events received before day 1 noon are pruned; day 2 on is recomputed, in Spain now."""
    spain = NumberPlaces("ES").place_for({})
    async with store_maker(backend, tmp_path) as make:
        store = make()
        await store.open()
        stored = await write_all(store, traffic())
        await store.backend.transact(delete_events_received_before(DAY0 + timedelta(days=1.5)))
        await store.close()
        store = make(place=spain)  # as after changing `default_region` to ES
        await store.open()
        try:
            report = await store.rebuild_rollups()
            rebuilt = await rollup_tables(store)
        finally:
            await store.close()
    day2 = epoch_micros(DAY0) + 2 * DAY_US
    assert report.from_us == day2
    kept_before, _ = split(expected_tables(stored, PLACE), day2)
    _, recomputed = split(expected_tables(stored, spain), day2)
    assert split(rebuilt, day2) == (kept_before, recomputed)
    assert recomputed != split(expected_tables(stored, PLACE), day2)[1]  # placed in Spain


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rollups_outlive_the_events(backend: str, tmp_path: Path) -> None:
    async with store_maker(backend, tmp_path) as make:
        store = make()
        await store.open()
        try:
            stored = await write_all(store, traffic())
            query = DeliveryQuery(
                epoch_micros(DAY0), epoch_micros(DAY0) + 5 * DAY_US, group_by=("provider",)
            )
            before = {
                key: figures(sums) for key, sums in (await store.delivery_sums(query)).items()
            }
            await store.backend.transact(delete_events_received_before(DAY0 + timedelta(days=9)))
            report = await store.rebuild_rollups()
            assert report.events == 0
            assert await rollup_tables(store) == expected_tables(stored, PLACE)
            after = {key: figures(sums) for key, sums in (await store.delivery_sums(query)).items()}
        finally:
            await store.close()
    assert after == before
    assert sum(group["messages"] for group in after.values()) == 120


ROLLUP_TABLES = (
    "delivery_histograms",
    "delivery_facts",
    "delivery_rollups",
    "delivery_reasons",
    "engagement_rollups",
)


def back_to_version_7() -> Transaction[None]:
    """The schema as version 7 left it: no rollup tables, migrations 8 on not recorded."""
    for table in ROLLUP_TABLES:
        yield Execute(f"DROP TABLE {table}")
    yield Execute("DELETE FROM schema_migrations WHERE version >= 8")


async def written_then_downgraded(
    make: StoreMaker, downgrade: Callable[[], Transaction[None]]
) -> tuple[list[Event], Tables]:
    """The traffic written and rolled up by this version, its rollup tables, then the
    schema put back by `downgrade`; the store closed, to be opened (and migrated) again."""
    store = make()
    await store.open()
    try:
        stored = await write_all(store, traffic())
        tables = await rollup_tables(store)
        await store.backend.transact(downgrade())
    finally:
        await store.close()
    return stored, tables


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_8_rolls_up_the_events_already_stored(backend: str, tmp_path: Path) -> None:
    async with store_maker(backend, tmp_path) as make:
        stored, _ = await written_then_downgraded(make, back_to_version_7)
        store = make(migrate="auto")
        await store.open()
        try:
            assert store.schema is not None and store.schema.applied == [8, 9, 10]
            migrated = await rollup_tables(store)
            await store.rebuild_rollups()  # the store's regions, as `dlrhub analytics rebuild`
            rebuilt = await rollup_tables(store)
        finally:
            await store.close()
    assert migrated == expected_tables(stored, NumberPlaces().place_for({}))  # no region yet
    assert rebuilt == expected_tables(stored, PLACE)
    assert migrated != rebuilt  # numbers without '+' are placed only by the rebuild


def back_to_version_9() -> Transaction[None]:
    """Hour cells' histograms as version 9 kept them: a row per bucket in delivery_latency."""
    yield Execute(
        SQLITE.ddl(
            ROLLUP_SCHEMA[ROLLUP_SCHEMA.index("CREATE TABLE IF NOT EXISTS delivery_latency") :]
            .split(";")[0]
            .replace("{bigint}", "BIGINT")
        )
    )
    columns = "grain, period_us, provider, source, sender, channel, country, operator"
    rows = yield Fetch(f"SELECT {columns}, counts FROM delivery_histograms WHERE grain = 'hour'")  # noqa: S608
    per_bucket = [
        (*key, bucket, count)
        for *key, counts in rows
        for bucket, count in unpack(from_bytes(bytes(counts))).items()
    ]
    assert per_bucket  # the traffic has receipts
    yield ExecuteMany(
        f"INSERT INTO delivery_latency ({columns}, bucket, count)"  # noqa: S608
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        per_bucket,
    )
    yield Execute("DELETE FROM delivery_histograms WHERE grain = 'hour'")
    yield Execute("DELETE FROM schema_migrations WHERE version >= 10")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_10_packs_the_hour_histograms(backend: str, tmp_path: Path) -> None:
    async with store_maker(backend, tmp_path) as make:
        stored, before = await written_then_downgraded(make, back_to_version_9)
        store = make(migrate="auto")
        await store.open()
        try:
            assert store.schema is not None and store.schema.applied == [10]
            after = await rollup_tables(store)
            left = await store.backend.read(
                "SELECT count(*) FROM delivery_histograms WHERE grain = 'hour'", []
            )
        finally:
            await store.close()
    assert after == before == expected_tables(stored, PLACE)
    assert int(left[0][0]) > 0
