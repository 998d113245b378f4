"""A recorded day of mixed traffic (tests/data/analytics/day.jsonl), replayed into a real dlrhub.

Each line is a provider callback (`"via": "hook"`: posted to `/hooks/{source}/{kind}`
of the app served by Uvicorn, with the source's token) or a provider's answer to a
send or a poll (`"via": "answer"`: normalized by the provider's normalizer and
stored with `received_at`, as the poller and sending do). `note` says what each
line is for. The traffic is 2026-11-20 (UTC), with a day before to compare with
and a little of the day after.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from dlrhub.event import RawCallback
from dlrhub.normalizers.base import SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.store import Accept, Store
from dlrhub.store.settings import open_store
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.processes import environment_without_dlrhub
from tests.serving import serve_app

DAY_FILE = Path(__file__).resolve().parents[1] / "data" / "analytics" / "day.jsonl"
ADMIN_TOKEN = "admin-token-for-analytics-0001"
VIEWER_TOKEN = "viewer-token-for-analytics-0001"
SOURCE_TOKEN = "source-token-for-analytics-0001"
DAY = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}


def recorded_lines() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in DAY_FILE.read_bytes().splitlines() if line.strip()]


def write_config(directory: Path, backend: str, schema: str | None) -> Path:
    store = (
        f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
        'migrate = "auto"\n'
        if backend == "postgres"
        else ""
    )
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
admin_token = "{ADMIN_TOKEN}"
viewer_tokens = ["{VIEWER_TOKEN}"]

{store}
[analytics]
default_region = "ES"
regions = {{ onurix-co = "CO" }}

[[sources]]
name = "nrs360"
provider = "360nrs"
token = "{SOURCE_TOKEN}"

[[sources]]
name = "gateway"
provider = "smsgateway"
token = "{SOURCE_TOKEN}"
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Day:
    config_path: Path
    config: Config
    store: Store
    base_url: str
    admin: httpx.AsyncClient
    outcomes: list[str]  # per recorded line: stored, duplicate...

    async def cli(self, *arguments: str) -> tuple[int, str, str]:
        """`python -m dlrhub ARGUMENTS --config <this day's config>` (exit code, out, err)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dlrhub",
            *arguments,
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment_without_dlrhub(),
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


async def replay(day: Day) -> list[str]:
    """Every recorded line, in order; the outcome of each (the hook's answer or the write's)."""
    outcomes = []
    for line in recorded_lines():
        if line["via"] == "hook":
            separator = "&" if line["query"] else ""
            answer = await day.admin.request(
                line["method"],
                f"/hooks/{line['source']}/{line['kind']}?{line['query']}{separator}"
                f"token={SOURCE_TOKEN}",
                content=line["body"].encode(),
                headers={"Content-Type": line["content_type"]} if line["content_type"] else {},
            )
            assert answer.status_code == 200, (line["note"], answer.text)
            if answer.headers["content-type"].startswith("application/json"):
                body = answer.json()
                outcomes.append("duplicate" if body["duplicate"] else body["status"])
            else:  # a provider that needs a fixed answer (smsgateway: ACK/Jasmin) says no more
                outcomes.append(answer.text)
        else:
            received_at = datetime.fromisoformat(line["received_at"]).replace(tzinfo=UTC)
            raw = RawCallback(
                source=line["account"],
                provider=line["provider"],
                kind=line["kind"],
                method=line["method"],
                query=line["query"],
                content_type=line["content_type"],
                body=line["body"].encode(),
                received_at=received_at,
            )
            events = PROVIDERS[line["provider"]].normalize(raw, SourceOptions())
            outcomes.append((await day.store.write(Accept(raw, events))).outcome)
    return outcomes


@contextlib.asynccontextmanager
async def recorded_day(
    directory: Path, backend: str, *, ingest_worker: bool = False
) -> AsyncIterator[Day]:
    """dlrhub served on `backend` with the recorded day replayed into it; callbacks are
    committed by the receiver's process, or by an ingest worker process (as `serve` does)."""
    async with contextlib.AsyncExitStack() as stack:
        schema = await stack.enter_async_context(fresh_schema()) if backend == "postgres" else None
        path = write_config(directory, backend, schema)
        config = load_config(path, env={})
        store = open_store(config.store, config.data_dir, place=config.number_places())
        base_url = await stack.enter_async_context(
            serve_app(create_app(config, store=store, ingest_worker=ingest_worker))
        )
        admin = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            )
        )
        day = Day(path, config, store, base_url, admin, [])
        day.outcomes = await replay(day)
        yield day
