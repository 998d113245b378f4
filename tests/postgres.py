"""The PostgreSQL the tests use: 127.0.0.1:5432 with trust auth, one schema per test."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

POSTGRES_DSN = os.environ.get(
    "DLRHUB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
HOW_TO_START = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or set DLRHUB_TEST_POSTGRES_DSN)"
)


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A schema name no other test uses, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_DSN} is not reachable ({error}); {HOW_TO_START}")
    try:
        yield schema
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()
