"""Fixtures of the outbound tests: fake providers served by Uvicorn on loopback."""

from __future__ import annotations

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
from dlrhub.store import EventFilter, SQLiteStore
from dlrhub.store.tracking_sqlite import SQLiteTrackingStore
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN
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


def outbound_config(tmp_path: Path, accounts: list[dict[str, Any]], **poller: Any) -> Config:
    """A dlrhub configuration with these accounts and a fast, jitter-free poller."""
    document: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
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
    store: SQLiteStore
    tracking: SQLiteTrackingStore


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    path = tmp_path / "data" / "dlrhub.sqlite3"
    store, tracking = SQLiteStore(path), SQLiteTrackingStore(path)
    await store.open()
    await tracking.open()
    yield Stores(store, tracking)
    await tracking.close()
    await store.close()


async def all_events(store: SQLiteStore, **filters: Any) -> list[Event]:
    return await store.events(EventFilter(limit=1000, **filters))
