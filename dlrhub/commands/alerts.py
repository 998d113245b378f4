"""Wiring of the alerts (docs/alerts.md): the evaluator's service and what it reads.

The evaluator reads the sinks through the sinks' own reports (`sink_reports`: lag and
dead letters as `dlrhub sinks status` shows them) and the poller's accounts through
`PollerView` (as `GET /v1/poller/accounts`), so an alert and the page agree.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

from dlrhub.alerts.evaluate import Evaluator, SinkReading
from dlrhub.alerts.service import LEASE_INTERVALS, AlertService
from dlrhub.config import Config
from dlrhub.receiver.tracking_api import PollerView
from dlrhub.sinks.operations import sink_reports
from dlrhub.sinks.service import open_sink_state
from dlrhub.store import Store, StoreUnavailable
from dlrhub.store.alerts_sql import SQLAlerts
from dlrhub.store.database import open_database
from dlrhub.store.settings import open_store
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable
from dlrhub.store.tracking_sql import open_tracking


class ConfiguredReadings:
    """The sinks and poller accounts of `config`, read from their state."""

    def __init__(
        self, config: Config, store: Store, sink_state: SinkStateStore, poller: PollerView
    ) -> None:
        self.config = config
        self.store = store
        self.sink_state = sink_state
        self.poller = poller

    async def sinks(self) -> list[SinkReading]:
        try:
            reports = await sink_reports(self.config, self.store, self.sink_state)
        except SinkStateUnavailable as error:
            raise StoreUnavailable(str(error)) from error
        return [
            SinkReading(report.name, report.lag_seconds, report.dead_letters)
            for report in reports
            if report.state != "unconfigured"
        ]

    async def accounts(self) -> dict[str, str | None]:
        return {
            state.config.name: state.pause.reason if state.pause else None
            for state in await self.poller.accounts()
        }


def evaluator_owner() -> str:
    """This process among the evaluators: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def alert_services(config: Config) -> list[Any]:
    """The alerts' evaluator for `serve`, when `[[alerts]]` has rules."""
    if not config.alerts:
        return []
    store = open_store(config.store, config.data_dir, place=config.number_places())
    sink_state = open_sink_state(config)
    tracking = open_tracking(config.store, config.data_dir)
    alerts = SQLAlerts(open_database(config.store, config.data_dir, synchronous="NORMAL"))
    readings = ConfiguredReadings(config, store, sink_state, PollerView(config.outbound, tracking))
    interval = config.alerting.interval
    evaluator = Evaluator(
        config.alerts,
        store,
        alerts,
        readings,
        owner=evaluator_owner(),
        lease_seconds=interval * LEASE_INTERVALS,
    )
    return [AlertService(evaluator, interval, [store, alerts, sink_state, tracking])]
