"""A world for the alert tests: a real store (SQLite, or PostgreSQL with `schema`), the
sink state and tracking tables, an evaluator on an injected clock, and helpers that
inject conditions (deliveries at given times, quarantine entries, dead letters...)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dlrhub.alerts.evaluate import Evaluator
from dlrhub.commands.alerts import ConfiguredReadings
from dlrhub.config import Config, parse_config
from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.receiver.tracking_api import PollerView
from dlrhub.sinks.service import open_sink_state
from dlrhub.store import Accept, EventFilter, Quarantine, Store
from dlrhub.store.alerts_sql import AlertRecord, AlertState, SQLAlerts
from dlrhub.store.database import open_database
from dlrhub.store.settings import open_store
from dlrhub.store.sink_state import SinkStateStore
from dlrhub.store.tracking_sql import SQLTrackingStore, open_tracking
from tests import payloads
from tests.postgres import POSTGRES_DSN

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)  # the evaluator's clock starts here
FAKE = FakeOnurix()


def onurix_account(name: str) -> dict[str, object]:
    return {
        "name": name,
        "provider": "onurix",
        "base_url": "http://127.0.0.1:9/api/v1",  # the poller does not run
        "client": FAKE.client,
        "key": FAKE.key,
        "poll": True,
    }


def raw(body: str, at: datetime) -> RawCallback:
    return payloads.raw(body, received_at=at)


@dataclass
class World:
    config: Config
    store: Store
    alerts: SQLAlerts
    sink_state: SinkStateStore
    tracking: SQLTrackingStore
    now: datetime = NOW

    def evaluator(self, owner: str = "one", alerts: SQLAlerts | None = None) -> Evaluator:
        poller = PollerView(self.config.outbound, self.tracking)
        readings = ConfiguredReadings(self.config, self.store, self.sink_state, poller)
        return Evaluator(
            self.config.alerts,
            self.store,
            alerts or self.alerts,
            readings,
            owner=owner,
            lease_seconds=150,
            clock=lambda: self.now,
        )

    async def send(
        self,
        count: int,
        status: Status,
        *,
        at: datetime,
        after: float = 2.0,
        provider: str = "nrs360",
    ) -> None:
        """`count` messages accepted at `at`, then `status` `after` seconds later."""
        run = uuid.uuid4().hex[:10]
        events = []
        for index in range(count):
            message = f"m-{run}-{index}"
            for step, (state, moment) in enumerate(
                ((Status.ACCEPTED, at), (status, at + timedelta(seconds=after)))
            ):
                events.append(
                    Event(
                        id=f"e-{run}-{index}-{step}",
                        source=provider,
                        provider=provider,
                        type=EventType.MESSAGE_STATUS,
                        received_at=moment,
                        message_id=message,
                        status=state,
                        occurred_at=moment,
                    )
                )
        await self.store.write(Accept(raw(run, at), events))

    async def quarantine(self, count: int) -> None:
        for _ in range(count):
            await self.store.write(Quarantine(raw(uuid.uuid4().hex, self.now), "unreadable"))

    async def alerts_now(self, state: AlertState | None = None) -> list[AlertRecord]:
        return await self.alerts.alerts(state)

    async def alert_events(self) -> list[Event]:
        return await self.store.events(EventFilter(type=EventType.ALERT))


def document(
    tmp_path: Path,
    rules: Sequence[dict[str, Any]],
    *,
    sinks: Sequence[dict[str, Any]] = (),
    accounts: Sequence[dict[str, Any]] = (),
    schema: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "alerts": list(rules),
        "sinks": list(sinks),
        "accounts": list(accounts),
    }
    if schema is not None:
        doc["store"] = {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema}
    return doc


@contextlib.asynccontextmanager
async def world(config: Config) -> AsyncIterator[World]:
    store = open_store(config.store, config.data_dir, place=config.number_places())
    await store.open()  # prepares the schema the others use
    alerts = SQLAlerts(open_database(config.store, config.data_dir))
    sink_state = open_sink_state(config)
    tracking = open_tracking(config.store, config.data_dir)
    opened: list[Any] = []
    try:
        for part in (alerts, sink_state, tracking):
            await part.open()
            opened.append(part)
        yield World(config, store, alerts, sink_state, tracking)
    finally:
        for part in reversed(opened):
            await part.close()
        await store.close()


def configured(tmp_path: Path, rules: Sequence[dict[str, Any]], **options: Any) -> Config:
    return parse_config(document(tmp_path, rules, **options))
