"""The fan-out as one background `Service`: embedded in `dlrhub serve`, or alone in `dlrhub worker`.

It opens its own connections to the event log and to the sink state, so sink
reads never queue behind the receiver's reads and a slow or down sink cannot
hold up ingest: the receiver commits and answers whatever the sinks do. While
it runs it holds the one-deliverer lock of its sink state
(`dlrhub/sinks/deliverer_lock.py`): a second service on the same data directory
is refused at start.
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
from dlrhub.sinks.kinds import create_sink
from dlrhub.sinks.settings import SinkConfig, SinksSettings
from dlrhub.store.base import Store
from dlrhub.store.settings import open_store
from dlrhub.store.sink_state import SinkStateStore
from dlrhub.store.sink_state_sql import SQLSinkState, open_sink_database

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0


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
    """Runs one `SinkRunner` per configured sink for as long as it is started."""

    def __init__(
        self,
        config: SinksSettings,
        *,
        sinks: Sequence[SinkConfig] | None = None,
        create: Callable[[SinkConfig], Sink] = create_sink,
        poll_interval: float = 0.02,
        control_interval: float = 0.5,
    ) -> None:
        self.config = config
        self.sink_configs = tuple(config.sinks if sinks is None else sinks)
        self.create = create
        self.poll_interval = poll_interval
        self.control_interval = control_interval
        self.runners: list[SinkRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._log: Store | None = None
        self._state: SinkStateStore | None = None
        self.lock = DelivererLock(config.sqlite_path)

    def claim(self) -> None:
        """Take the one-deliverer lock now, or raise `DeliveryRefused` naming its holder.

        `start` takes it too; a command claims it first so that it is refused before
        it serves anything.
        """
        self.lock.acquire()

    async def start(self) -> None:
        self.claim()
        try:
            event_log, state = await _open(self.config)
        except BaseException:
            self.lock.release()
            raise
        self._log, self._state = event_log, state
        self.runners = [
            SinkRunner(
                sink_config,
                self.create(sink_config),
                event_log,
                state,
                poll_interval=self.poll_interval,
                control_interval=self.control_interval,
            )
            for sink_config in self.sink_configs
        ]
        self._tasks = [
            asyncio.create_task(runner.run(), name=f"dlrhub-sink-{runner.name}")
            for runner in self.runners
        ]
        if self.runners:
            names = ", ".join(f"{r.name} ({r.config.kind})" for r in self.runners)
            log.info("delivering events to %d sink(s): %s", len(self.runners), names)

    async def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                log.warning("sink %s did not stop in time; cancelling", task.get_name())
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks = []
        if self._state is not None:
            await self._state.close()
        if self._log is not None:
            await self._log.close()
        self._state = self._log = None
        self.lock.release()  # last: nothing of this service delivers any more

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
