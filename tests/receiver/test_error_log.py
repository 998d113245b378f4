"""A failing store is logged once per interval with a count, not once per callback; the
access line per request is separate and `server.access_log = false` switches it off.

`dlrhub serve` runs as a subprocess (receiver and ingest worker, as deployed); its
`events` table is dropped under it, so every commit fails, and 1,000 callbacks follow.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from dlrhub.log_limits import INTERVAL_SECONDS
from dlrhub.store.rollups import CURSOR
from tests.conftest import SOURCE_TOKEN, write_config
from tests.payloads import FORM, event_form
from tests.processes import dlrhub_serve
from tests.waiting import eventually_async

FAILING_CALLBACKS = 1_000
CONCURRENCY = 32
COUNTED = re.compile(r"\((1 time;|\d+ times in )")  # log_limits.LimitedLog's count


async def post_many(base_url: str, count: int) -> list[int]:
    statuses: list[int] = []
    numbers = iter(range(count))
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def sender() -> None:
            for number in numbers:
                answer = await client.post(
                    "/hooks/nrs360/events",
                    params={"token": SOURCE_TOKEN},
                    headers=FORM,
                    content=event_form("delivered", message_id=f"m-{number}"),
                )
                statuses.append(answer.status_code)

        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    return statuses


@pytest.mark.parametrize("access_log", [True, False], ids=["access_log", "no_access_log"])
async def test_1000_failing_callbacks_log_a_few_counted_lines(
    tmp_path: Path, access_log: bool
) -> None:
    extra = f"[server]\naccess_log = {str(access_log).lower()}\n"
    config_path = write_config(tmp_path, extra=extra)
    async with dlrhub_serve("--config", str(config_path), log_dir=tmp_path, cwd=tmp_path) as server:
        assert await post_many(server.base_url, 1) == [200]
        database = tmp_path / "data" / "dlrhub.sqlite3"
        # Once the writer has rolled the event up (when idle), it has nothing left to roll
        # up: the only failures below are the commits'.
        await eventually_async(lambda: rolled_up(database) == 1, 10, "the rollups")
        with sqlite3.connect(database) as other:
            other.execute("DROP TABLE events")  # every commit of an event now fails
        started = time.monotonic()
        assert set(await post_many(server.base_url, FAILING_CALLBACKS)) == {503}
        elapsed = time.monotonic() - started
        await server.stop()
        output = server.output()

    lines = output.splitlines()
    problems = [line for line in lines if " ERROR " in line or " WARNING " in line]
    # Two reporters (the store in the worker, the receiver's 503s), each a first line and at
    # most one per interval after it, plus one for rounding: 4 when it all takes under 10 s.
    most = 2 * (1 + int(elapsed // INTERVAL_SECONDS) + 1)
    assert 2 <= len(problems) <= most, "\n".join(problems)
    uncounted = [line for line in problems if not COUNTED.search(line)]
    assert not uncounted, "\n".join(uncounted)
    assert any("store commits failed: no such table: events" in line for line in problems)
    assert "Traceback" not in output
    access_lines = [line for line in lines if "dlrhub.access" in line and "POST /hooks/" in line]
    assert len(access_lines) == (1 + FAILING_CALLBACKS if access_log else 0)


def rolled_up(database: Path) -> int:
    """The last seq the delivery rollups counted (dlrhub/store/rollups.py's cursor)."""
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (CURSOR,)).fetchone()
    return int(row[0]) if row else 0
