"""The PostgreSQL the tests use: 127.0.0.1:5432 with trust auth, one schema per test.

Other test runs share the server: a test that terminates backends names its own
connections (`named_dsn`) and terminates only those (`terminate_backends`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import asyncpg
import pytest

from tests.waiting import eventually_async

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


def named_dsn(application_name: str) -> str:
    """`POSTGRES_DSN` whose connections show `application_name` in pg_stat_activity."""
    separator = "&" if "?" in POSTGRES_DSN else "?"
    return f"{POSTGRES_DSN}{separator}{urlencode({'application_name': application_name})}"


async def backends(application_name: str) -> list[int]:
    """The server pids of the connections named `application_name`."""
    connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await connection.close()
    return [int(row["pid"]) for row in rows]


async def terminate_backends(application_name: str) -> list[int]:
    """`pg_terminate_backend` on the connections named `application_name`, once they are gone."""
    connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
        pids = [int(row["pid"]) for row in rows]
        still_there = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = any($1::int[])"
        await eventually_async(  # those backends have exited: their sockets are closed
            lambda: connection.fetchval(still_there, pids), 10, "terminated backends to exit"
        )
    finally:
        await connection.close()
    return pids
