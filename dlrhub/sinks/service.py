"""The fan-out as one background `Service`: embedded in `dlrhub serve`, or alone in `dlrhub worker`.

It opens its own connections to the event log and to the sink state, so sink
reads never queue behind the receiver's reads and a slow or down sink cannot
hold up ingest: the receiver commits and answers whatever the sinks do. It
delivers the sinks whose lease it holds (`leases.py`): on PostgreSQL any
number of workers share them; on SQLite it also holds the one-deliverer lock
(`dlrhub/sinks/deliverer_lock.py`), so a second service on the same file is
refused at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dlrhub.sinks.base import Sink
from dlrhub.sinks.deliverer_lock import DelivererLock
from dlrhub.sinks.engine import SinkRunner
from dlrhub.sinks.fencing import FencedSinkState
from dlrhub.sinks.kinds import create_sink
from dlrhub.sinks.leases import LeaseKeeper, new_owner
from dlrhub.sinks.settings import SinkConfig, SinksSettings
from dlrhub.store.base import Store
from dlrhub.store.notifications import EventNotifications
from dlrhub.store.settings import open_store
from dlrhub.store.sink_leases import SinkLeases
from dlrhub.store.sink_state import SinkStateStore
from dlrhub.store.sink_state_sql import SQLSinkState, open_sink_database

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
FAST_POLL = 0.02  # seconds between looks at the log for new events (SQLite)
SLOW_POLL = 1.0  # PostgreSQL, where a commit's NOTIFY wakes the runners at once


def open_sink_state(config: SinksSettings) -> SinkStateStore:
    """The sink state on the configured store's database (not yet opened; open the log first)."""
    return SQLSinkState(open_sink_database(config.store, config.data_dir))


def open_event_log(config: SinksSettings) -> Store:
    """A store of its own for the sinks to read the log through (not yet opened)."""
    return open_store(config.store, config.data_dir)


async def _open(config: SinksSettings) -> tuple[Store, SinkStateStore]:
    event_log, state = open_event_log(config), open_sink_state(config)
    await event_log.open()
    try:
        await state.open()
    except BaseException:
        await event_log.close()
        raise
    return event_log, state


class SinkService:
    """Runs a `SinkRunner` for each configured sink whose lease this worker holds."""

    def __init__(
        self,
        config: SinksSettings,
        *,
        sinks: Sequence[SinkConfig] | None = None,
        create: Callable[[SinkConfig], Sink] = create_sink,
        poll_interval: float | None = None,
        control_interval: float = 0.5,
        listen: bool = True,
    ) -> None:
        self.config = config
        self.sink_configs = tuple(config.sinks if sinks is None else sinks)
        self.create = create
        postgres = config.store.backend == "postgres"
        # On PostgreSQL a commit wakes the runners (LISTEN/NOTIFY); the poll is the fallback.
        if poll_interval is None:
            poll_interval = SLOW_POLL if postgres else FAST_POLL
        self.poll_interval = poll_interval
        self.listen = listen and postgres
        self.notifications: EventNotifications | None = None
        self._listening: asyncio.Task[None] | None = None
        self.control_interval = control_interval
        self.runners: list[SinkRunner] = []
        self.keeper: LeaseKeeper | None = None
        self._keeping: asyncio.Task[None] | None = None
        self._log: Store | None = None
        self._state: SinkStateStore | None = None
        # On PostgreSQL several workers share the sinks through leases; on SQLite one only.
        self.lock = DelivererLock(config.sqlite_path) if config.store.backend == "sqlite" else None

    def claim(self) -> None:
        """Take the one-deliverer lock now (SQLite), or raise `DeliveryRefused` naming its holder.

        `start` takes it too; a command claims it first so that it is refused before
        it serves anything.
        """
        if self.lock is not None:
            self.lock.acquire()

    async def start(self) -> None:
        self.claim()
        try:
            event_log, state = await _open(self.config)
        except BaseException:
            self._release_lock()
            raise
        self._log, self._state = event_log, state
        self.runners = []
        fenced: dict[str, FencedSinkState] = {}
        for sink_config in self.sink_configs:
            fenced[sink_config.name] = FencedSinkState(state, lambda: None)
            self.runners.append(
                SinkRunner(
                    sink_config,
                    self.create(sink_config),
                    event_log,
                    fenced[sink_config.name],
                    poll_interval=self.poll_interval,
                    control_interval=self.control_interval,
                )
            )
        assert isinstance(state, SQLSinkState)
        lease = self.config.worker.lease
        leases = SinkLeases(state.database, new_owner(), lease)
        keeper = self.keeper = LeaseKeeper(
            leases, self.runners, fenced, lease, force=self.lock is not None
        )
        if self.listen:
            assert self.config.store.dsn is not None
            self.notifications = EventNotifications(self.config.store.dsn, self._wake_runners)
            self._listening = asyncio.create_task(
                self.notifications.listen(), name="dlrhub-sink-listen"
            )
        await keeper.round()
        self._keeping = asyncio.create_task(keeper.keep(), name="dlrhub-sink-leases")
        if self.runners:
            names = ", ".join(f"{r.name} ({r.config.kind})" for r in self.runners)
            log.info(
                "sink worker %s: %d sink(s) configured: %s; delivering %d",
                leases.owner,
                len(self.runners),
                names,
                len(keeper.held),
            )

    def _wake_runners(self, _last_seq: int) -> None:
        for runner in self.runners:
            runner.control.new_events()

    async def stop(self) -> None:
        """Stop delivering, commit the cursors, release the leases: within `shutdown_timeout`."""
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
        if self.keeper is not None:
            await self.keeper.stop(min(STOP_TIMEOUT, self.config.shutdown_timeout * 0.75))
        if self._keeping is not None:
            self._keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeping
        self.keeper = self._keeping = None
        if self._state is not None:
            await self._state.close()
        if self._log is not None:
            await self._log.close()
        self._state = self._log = None
        self._release_lock()  # last: nothing of this service delivers any more

    def _release_lock(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def collector(self) -> Collector:
        """Prometheus metrics of every sink, for an app's registry."""
        return SinkMetrics(lambda: self.runners)


class SinkMetrics(Collector):
    """Per-sink metrics, read from the runners at scrape time."""

    def __init__(self, runners: Callable[[], Sequence[SinkRunner]]) -> None:
        self.runners = runners

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        delivered = CounterMetricFamily(
            "dlrhub_sink_delivered", "Events acknowledged by the sink.", labels=["sink"]
        )
        failed = CounterMetricFamily(
            "dlrhub_sink_failed_attempts",
            "Delivery attempts that failed and count towards max_attempts.",
            labels=["sink"],
        )
        dead = CounterMetricFamily(
            "dlrhub_sink_dead_lettered", "Events put in the dead-letter table.", labels=["sink"]
        )
        waiting = GaugeMetricFamily(
            "dlrhub_sink_dead_letters", "Dead letters waiting in the table.", labels=["sink"]
        )
        lag_events = GaugeMetricFamily(
            "dlrhub_sink_lag_events", "Events in the log after the sink's cursor.", labels=["sink"]
        )
        lag_seconds = GaugeMetricFamily(
            "dlrhub_sink_lag_seconds",
            "Age of the oldest event after the sink's cursor.",
            labels=["sink"],
        )
        up = GaugeMetricFamily(
            "dlrhub_sink_up",
            "1 while the sink takes deliveries (not down, paused or disabled).",
            labels=["sink"],
        )
        for runner in self.runners():
            stats, labels = runner.stats, [runner.name]
            delivered.add_metric(labels, stats.delivered)
            failed.add_metric(labels, stats.failed_attempts)
            dead.add_metric(labels, stats.dead_lettered)
            waiting.add_metric(labels, stats.dead_letters_waiting)
            lag_events.add_metric(labels, stats.lag_events)
            lag_seconds.add_metric(labels, stats.lag_seconds)
            up.add_metric(labels, 1.0 if stats.state in ("running", "retrying") else 0.0)
        yield from (delivered, failed, dead, waiting, lag_events, lag_seconds, up)
