"""`make_store`: one fixture, parametrized over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from dlrhub.store import SQLiteStore, SQLStore
from dlrhub.store.postgres import PostgresStore
from tests.postgres import POSTGRES_DSN, fresh_schema


@pytest.fixture(params=["sqlite", "sqlite_blocking_commit", "postgres"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., SQLStore]]:
    """Each call gives a new, unopened store over the same data.

    `sqlite_blocking_commit` is the SQLite store as the ingest worker runs it.
    """
    if request.param.startswith("sqlite"):
        blocking_commit = request.param == "sqlite_blocking_commit"

        def sqlite(**options: Any) -> SQLStore:
            return SQLiteStore(
                tmp_path / "store.sqlite3", blocking_commit=blocking_commit, **options
            )

        yield sqlite
        return
    async with fresh_schema() as schema:

        def postgres(**options: Any) -> SQLStore:
            return PostgresStore(POSTGRES_DSN, schema=schema, **options)

        yield postgres
