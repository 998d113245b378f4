"""Fresh stores of either backend for the analytics tests, and their rollup tables as data."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from dlrhub.analytics.facts import Place
from dlrhub.analytics.histogram import from_bytes, unpack
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.store import SQLiteStore, SQLStore
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.rollups import COUNTERS
from tests.postgres import POSTGRES_DSN, fresh_schema

BACKENDS = ["sqlite", "postgres"]
# Numbers without '+' are Colombian, but the "office" source's are Spanish.
PLACE: Place = NumberPlaces("CO").place_for({"office": "ES"})

Tables = dict[str, dict[tuple[Any, ...], Any]]


StoreMaker = Callable[..., SQLStore]  # (**options) -> an unopened store over the same data


@contextlib.asynccontextmanager
async def store_maker(backend: str, directory: Path) -> AsyncIterator[StoreMaker]:
    """Each call gives a new, unopened store over the same (new, empty) data."""
    if backend == "sqlite":
        path = directory / f"{uuid.uuid4().hex}.sqlite3"
        yield lambda **options: SQLiteStore(path, **{"place": PLACE, **options})
        return
    async with fresh_schema() as schema:
        yield lambda **options: PostgresStore(
            POSTGRES_DSN, schema=schema, **{"place": PLACE, **options}
        )


@contextlib.asynccontextmanager
async def fresh_store(backend: str, directory: Path, **options: Any) -> AsyncIterator[SQLStore]:
    """An open store over empty data, closed (and its schema dropped) afterwards."""
    async with store_maker(backend, directory) as make:
        store = make(**options)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


_KEY = "grain, period_us, provider, source, sender, channel, country, operator"
QUERIES = {  # table and column names are constants
    "delivery_rollups": f"SELECT {_KEY}, {', '.join(COUNTERS)} FROM delivery_rollups",  # noqa: S608
    "delivery_reasons": (
        f"SELECT {_KEY}, status, reason, error_code, count FROM delivery_reasons"  # noqa: S608
    ),
    "engagement_rollups": (
        "SELECT grain, period_us, provider, source, channel, kind, count FROM engagement_rollups"
    ),
}
KEY_WIDTH = {"delivery_rollups": 8, "delivery_reasons": 11}


async def rollup_tables(store: SQLStore) -> Tables:
    """Each rollup table as {key: values}, rows whose values are all 0 left out, once every
    event written is rolled up."""
    await store.catch_up_rollups()
    tables: Tables = {}
    for table, sql in QUERIES.items():
        width = KEY_WIDTH.get(table, 6)
        rows = await store.backend.read(sql, [])
        tables[table] = {
            tuple(row[:width]): tuple(int(value) for value in row[width:])
            if table == "delivery_rollups"
            else int(row[width])
            for row in rows
            if any(int(value) for value in row[width:])
        }
    # Cells' histograms are packed, one row per cell: as rows per bucket here.
    tables["delivery_latency"] = {}
    rows = await store.backend.read(f"SELECT {_KEY}, counts FROM delivery_histograms", [])  # noqa: S608
    for *key, counts in rows:
        for bucket, count in unpack(from_bytes(bytes(counts))).items():
            tables["delivery_latency"][(*key, bucket)] = count
    return tables
