"""Fixtures of the outbound tests: fake providers served by Uvicorn on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dlrhub.config import Config, parse_config
from dlrhub.event import Event
from dlrhub.outbound.settings import AccountConfig, parse_outbound
from dlrhub.providers.conectaline.fake import FakeConectaline
from dlrhub.providers.nrs360.fake import FakeNrs360
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.providers.uvox.fake import FakeUvox
from dlrhub.store import EventFilter, Store
from dlrhub.store.settings import StoreConfig, open_store
from dlrhub.store.tracking_sql import SQLTrackingStore, open_tracking
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app

BASE_PATHS = {
    "onurix": "/api/v1",
    "uvox": "/api/get-api/v1",
    "conectaline": "/v1",
    "nrs360": "/api/rest",
}


def make_account(provider: str, base_url: str, **settings: Any) -> AccountConfig:
    """An account as `[[accounts]]` would configure it, with fast retries for tests."""
    table = {
        "name": f"{provider}-test",
        "provider": provider,
        "base_url": base_url + BASE_PATHS[provider],
        "backoff": "1ms",
        "timeout": "2s",
        "rate_limit": 0,
        **settings,
    }
    (account,) = parse_outbound({"accounts": [table]}).accounts
    return account


@pytest.fixture
async def onurix() -> AsyncIterator[tuple[FakeOnurix, str]]:
    fake = FakeOnurix()
    async with serve_app(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
async def uvox() -> AsyncIterator[tuple[FakeUvox, str]]:
    fake = FakeUvox()
    async with serve_app(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
async def conectaline() -> AsyncIterator[tuple[FakeConectaline, str]]:
    fake = FakeConectaline()
    async with serve_app(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
async def nrs360() -> AsyncIterator[tuple[FakeNrs360, str]]:
    fake = FakeNrs360()
    async with serve_app(fake.app) as base_url:
        yield fake, base_url


class Clock:
    """An injectable clock for the poller: time moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def outbound_config(where: Path | Stores, accounts: list[dict[str, Any]], **poller: Any) -> Config:
    """A dlrhub configuration with these accounts and a fast, jitter-free poller.

    `where`: the test's `tmp_path` (SQLite in `tmp_path/data`), or the `stores` fixture
    (its backend, and its data directory).
    """
    tmp_path, store = (where.root, where.section) if isinstance(where, Stores) else (where, {})
    document: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "store": store,
        "admin_token": ADMIN_TOKEN,
        "sources": [{"name": "nrs360", "provider": "360nrs", "token": SOURCE_TOKEN}],
        "accounts": [
            {"backoff": "1ms", "timeout": "2s", "rate_limit": 0, **account} for account in accounts
        ],
        "poller": {
            "first_interval": "50ms",
            "multiplier": 2,
            "max_interval": "1s",
            "jitter": 0,
            "idle_sleep": "20ms",
            "lease": "5s",
            **poller,
        },
    }
    return parse_config(document)


@dataclass
class Stores:
    """The event store and the tracking store of one backend, open."""

    store: Store
    tracking: SQLTrackingStore
    root: Path  # the test's tmp_path; the data directory is `root / "data"`
    section: dict[str, Any]  # the `[store]` table: {} for SQLite in the data directory

    @property
    def settings(self) -> StoreConfig:
        return StoreConfig(**self.section)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def other_tracking(self) -> SQLTrackingStore:
        """Another connection to the same tables, as another process has (not yet opened)."""
        return open_tracking(self.settings, self.data_dir)


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async with contextlib.AsyncExitStack() as stack:
        section: dict[str, Any] = {}
        if request.param == "postgres":
            schema = await stack.enter_async_context(fresh_schema())
            section = {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema}
        settings, data_dir = StoreConfig(**section), tmp_path / "data"
        store = open_store(settings, data_dir)  # prepares the schema
        await store.open()
        stack.push_async_callback(store.close)
        tracking = open_tracking(settings, data_dir)
        await tracking.open()
        stack.push_async_callback(tracking.close)
        yield Stores(store, tracking, tmp_path, section)


async def all_events(store: Store, **filters: Any) -> list[Event]:
    return await store.events(EventFilter(limit=1000, **filters))
