"""Retention: the `[retention]` section, and the pruner that deletes old rows in small batches.

| key             | default   | what is deleted once older than this                           |
|-----------------|-----------|----------------------------------------------------------------|
| `events`        | keep      | events (by `received_at`) that every enabled sink delivered    |
|                 |           | and, with them, their delivery attempts (below)                |
| `raw_callbacks` | keep      | received callbacks that no event or quarantine entry refers to |
| `dedupe`        | `"7d"`    | nothing by itself: no raw callback goes before this age        |
| `quarantine`    | keep      | resolved (reprocessed) entries, by their last change           |
| `dead_letters`  | keep      | dead letters not queued for retry, by their last change        |
| `tracking`      | keep      | tracked messages the poller stopped following, by stop time    |
| `alerts`        | keep      | resolved alerts (`[[alerts]]` history), by resolve time        |
| `interval`      | `"60s"`   | time between two background passes                            |
| `batch`         | `1000`    | rows deleted per transaction                                   |

A raw callback row is also the callback's dedupe key: while it exists, a
provider's retry of the callback is answered as a duplicate. So it is kept at
least `dedupe` (at least one day: 360NRS retries for about 15 minutes), and
only once its events and quarantine entry are gone (set `events` to prune
raw callbacks at all). The per-minute callback counts (`callback_counts`, the
operator console's graph) are their own kind without a key of their own: they
go by minute at the raw callbacks' age, so a graph never reaches further back
than the callbacks it counts. The `messages` table (one row of current state per
message) is not history and is never pruned.

Delivery attempts (`delivery_attempts`, one row per event per sink attempt)
have no key of their own: they go with the events, by seq. After the events,
a pass deletes the attempts whose seq is below the first event left in the log
(all of them when the log is empty), in the same batches.

Before events are pruned, the pass rolls up any event the delivery rollups have
not counted yet (dlrhub/store/rollups.py): the store's writers do it within
moments, so this matters only for a store nobody wrote to or read from since.

What is never pruned, whatever its age: an event with a seq after the cursor
of an enabled sink (configured and not disabled; a paused sink holds too, and
a configured sink that never ran and starts at the beginning holds
everything), and a pending quarantine entry.

How it runs: each batch is its own short transaction (a select of at most
`batch` candidates in time order, then their delete, re-checked inside it),
and the pruner sleeps as long as the batch took before the next one, so it
holds SQLite's write lock at most half of the time and ingest commits between
batches. On PostgreSQL, each batch takes a transaction-level advisory lock
with `pg_try_advisory_xact_lock`: when several processes prune at once, one
deletes and the others find the lock taken and leave the pass to it; a batch
is an idempotent delete either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dlrhub.analytics.facts import Place
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.event import format_time, parse_time
from dlrhub.settings_schema import AtMost, Check, Convert, PositiveDuration, PositiveInt
from dlrhub.settings_values import read_duration
from dlrhub.store.base import MAX_INTEGER, StoreUnavailable
from dlrhub.store.database import Database
from dlrhub.store.rollups import PAGE as ROLLUP_PAGE
from dlrhub.store.rollups import catch_up
from dlrhub.store.sql_statements import Execute, Fetch, Transaction

log = logging.getLogger(__name__)

DAY = 86_400.0
MIN_DEDUPE = DAY
PRUNE_LOCK = 0x646C7270  # "dlrp": any constant, the same in every dlrhub process


def _at_least_a_day(seconds: float) -> str | None:
    if seconds >= MIN_DEDUPE:
        return None
    return (
        "must be at least 1d: providers retry a callback for a while (some for about"
        " 15 minutes), and a retry whose dedupe key was pruned is stored twice"
    )


def _longer_than_zero(seconds: float) -> str | None:
    return None if seconds > 0 else "must be longer than 0 (leave it out to keep forever)"


Age = Annotated[float, Convert(read_duration), Check(_longer_than_zero)]
DedupeAge = Annotated[float, Convert(read_duration), Check(_at_least_a_day)]


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """`[retention]`: how long each kind of row is kept (unset: forever); see above."""

    events: Age | None = None
    raw_callbacks: Age | None = None
    dedupe: DedupeAge = 7 * DAY
    quarantine: Age | None = None
    dead_letters: Age | None = None
    tracking: Age | None = None
    alerts: Age | None = None
    interval: PositiveDuration = 60.0
    batch: Annotated[PositiveInt, AtMost(50_000)] = 1_000

    @property
    def enabled(self) -> bool:
        """Whether anything is ever pruned."""
        return any(self.age(kind) is not None for kind in KINDS)

    def age(self, kind: Kind) -> float | None:
        """How old a row of `kind` must be to be pruned; None: kept forever."""
        if kind == "delivery_attempts":
            return self.events  # pruned with their events
        if kind in ("raw_callbacks", "callback_counts"):  # counts go with what they count
            return None if self.raw_callbacks is None else max(self.raw_callbacks, self.dedupe)
        value: float | None = getattr(self, kind)
        return value


Kind = Literal[
    "events",
    "delivery_attempts",
    "quarantine",
    "dead_letters",
    "tracking",
    "alerts",
    "raw_callbacks",
    "callback_counts",
]
# In this order: a raw callback goes only after its events and quarantine entry, delivery
# attempts right after their events.
KINDS: tuple[Kind, ...] = (
    "events",
    "delivery_attempts",
    "quarantine",
    "dead_letters",
    "tracking",
    "alerts",
    "raw_callbacks",
    "callback_counts",
)


@dataclass(frozen=True, slots=True)
class HeldSink:
    """A configured sink, as retention sees it: its cursor holds events back."""

    name: str
    starts_at_beginning: bool  # a sink that never ran starts at seq 0 (else at the head)


@dataclass(frozen=True, slots=True)
class _Table:
    """How to find a kind's rows in time order, and which of them may go."""

    table: str
    key: str  # a unique integer column, the tie-breaker of the time order
    time: str  # the column the age is measured on
    scope: str  # rows of the kind at all (quarantine: resolved ones)
    deletable: str  # what must also hold, with `?` for the hold where needed
    micros: bool = False  # the age's column is microseconds since the epoch (else ISO text)
    oldest: str = ""  # the column the oldest row's age is read from, if not `time`


TABLES: dict[Kind, _Table] = {
    "events": _Table("events", "seq", "received_at", "received_at IS NOT NULL", "seq <= ?"),
    # By seq, not time: the cutoff is the first seq left in the log (`_first_kept_seq`).
    "delivery_attempts": _Table(
        "delivery_attempts",
        "id",
        "seq",
        "1 = 1",
        "NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = delivery_attempts.seq)",
        micros=True,
        oldest="at_us",
    ),
    "quarantine": _Table("quarantine", "id", "updated_at", "state = 'reprocessed'", "1 = 1"),
    "dead_letters": _Table("sink_dead_letters", "id", "updated_at", "state = 'dead'", "1 = 1"),
    "tracking": _Table(
        "tracked_messages", "id", "stopped_us", "stopped_us IS NOT NULL", "1 = 1", micros=True
    ),
    # An open alert never goes, however old: only a resolved one's history.
    "alerts": _Table("alerts", "id", "resolved_us", "state = 'resolved'", "1 = 1", micros=True),
    "raw_callbacks": _Table(
        "raw_callbacks",
        "id",
        "received_at",
        "1 = 1",
        "NOT EXISTS (SELECT 1 FROM events e WHERE e.raw_id = raw_callbacks.id)"
        " AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.raw_id = raw_callbacks.id)",
    ),
    # Keyed by the minute itself: a batch deletes whole minutes (every source and outcome).
    "callback_counts": _Table(
        "callback_counts", "minute_us", "minute_us", "1 = 1", "1 = 1", micros=True
    ),
}


@dataclass
class KindReport:
    """One kind's outcome of a pass (or what a dry run would delete)."""

    kind: Kind
    age: float | None  # the retention; None: kept forever
    deleted: int = 0
    skipped: bool = False  # another process held the prune lock


@dataclass
class PassReport:
    kinds: list[KindReport] = field(default_factory=list)
    hold: int = MAX_INTEGER  # events after this seq were kept for a sink
    held_by: str | None = None

    @property
    def deleted(self) -> int:
        return sum(kind.deleted for kind in self.kinds)


Progress = Callable[[Kind, int], None]  # called after each batch with the kind's total so far


class Pruner:
    """Deletes what `RetentionConfig` says may go, in batches, on any `Database`."""

    def __init__(
        self,
        database: Database,
        retention: RetentionConfig,
        sinks: Sequence[HeldSink] = (),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        place: Place | None = None,
    ) -> None:
        self.database = database
        self.retention = retention
        self.sinks = tuple(sinks)
        self.clock = clock
        # Recipients' places for rolling up what the rollups have not counted yet.
        self.place = place or NumberPlaces().place_for({})
        self.pruned: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        self.oldest_age: dict[Kind, float] = dict.fromkeys(KINDS, 0.0)

    async def hold(self) -> tuple[int, str | None]:
        """The last seq every enabled sink delivered, and the sink whose cursor that is."""
        rows = await self.database.read("SELECT sink, after_seq, disabled_reason FROM sink_cursors")
        cursors = {str(sink): (int(after), reason) for sink, after, reason in rows}
        hold, held_by = MAX_INTEGER, None
        for sink in self.sinks:
            if sink.name in cursors:
                after, reason = cursors[sink.name]
                if reason:  # disabled: it holds nothing back (docs/retention.md)
                    continue
            elif sink.starts_at_beginning:
                after = 0
            else:
                continue
            if after < hold:
                hold, held_by = after, sink.name
        return hold, held_by

    async def _count_in_the_rollups(self) -> None:
        """Roll up every event not counted yet, so that none is pruned uncounted (the
        store's writers follow the log within moments; this is for a quiet store)."""
        while True:
            done = await self.database.transact(catch_up(self.place, self.database.dialect))
            if done < ROLLUP_PAGE:
                return

    async def run_pass(
        self, *, dry_run: bool = False, progress: Progress | None = None
    ) -> PassReport:
        """Prune every kind once (or, with `dry_run`, count what would go)."""
        hold, held_by = await self.hold()
        report = PassReport(hold=hold, held_by=held_by)
        if not dry_run and self.retention.age("events") is not None:
            await self._count_in_the_rollups()
        now = self.clock()
        for kind in KINDS:
            age = self.retention.age(kind)
            outcome = KindReport(kind, age)
            report.kinds.append(outcome)
            if age is None:
                continue
            if kind == "delivery_attempts":
                cutoff = await self._first_kept_seq(hold if dry_run else None)
            else:
                cutoff = self.cutoff(kind, now, age)
            if dry_run:
                outcome.deleted = await self._count(kind, cutoff, hold)
            else:
                await self._prune(kind, cutoff, hold, outcome, progress)
        if not dry_run:
            await self.measure_oldest()
        return report

    async def measure_oldest(self) -> None:
        """Refresh the oldest row's age per kind (the gauge)."""
        now = self.clock()
        for kind in KINDS:
            spec = TABLES[kind]
            rows = await self.database.read(
                f"SELECT min({spec.oldest or spec.time}) FROM {spec.table}"  # noqa: S608
                f" WHERE {spec.scope}"
            )
            oldest = rows[0][0] if rows else None
            if oldest is None:
                self.oldest_age[kind] = 0.0
                continue
            moment = (
                datetime.fromtimestamp(int(oldest) / 1_000_000, UTC)
                if spec.micros
                else parse_time(str(oldest))
            )
            self.oldest_age[kind] = max((now - moment).total_seconds(), 0.0)

    def cutoff(self, kind: Kind, now: datetime, age: float) -> Any:
        moment = now - timedelta(seconds=age)
        if TABLES[kind].micros:
            return int(moment.timestamp() * 1_000_000)
        return format_time(moment)

    async def _first_kept_seq(self, dry_run_hold: int | None) -> int:
        """The first seq left in the log (a dry run: that the pass would leave); the
        attempts below it belong to pruned events."""
        sql = "SELECT min(seq) FROM events"
        params: list[Any] = []
        age = self.retention.age("events")
        if dry_run_hold is not None and age is not None:
            sql += " WHERE NOT (received_at IS NOT NULL AND received_at < ? AND seq <= ?)"
            params += [self.cutoff("events", self.clock(), age), dry_run_hold]
        rows = await self.database.read(sql, params)
        first = rows[0][0] if rows else None
        return MAX_INTEGER if first is None else int(first)

    async def _count(self, kind: Kind, cutoff: Any, hold: int) -> int:
        spec = TABLES[kind]
        condition, params = self._would_go(kind, hold)
        rows = await self.database.read(
            f"SELECT count(*) FROM {spec.table} WHERE {spec.scope}"  # noqa: S608
            f" AND {spec.time} < ? AND {condition}",
            [cutoff, *params],
        )
        return int(rows[0][0])

    def _would_go(self, kind: Kind, hold: int) -> tuple[str, list[Any]]:
        """A dry run's condition: as the real one, with the rows the pass deletes before
        this kind (events, resolved quarantine entries) counted as gone."""
        if kind == "events":
            return "seq <= ?", [hold]
        if kind != "raw_callbacks":  # delivery attempts: the cutoff says it
            return "1 = 1", []
        params: list[Any] = []
        event_stays = "1 = 1"
        events_age = self.retention.age("events")
        if events_age is not None:
            event_stays = "NOT (e.received_at < ? AND e.seq <= ?)"
            params += [self.cutoff("events", self.clock(), events_age), hold]
        entry_stays = "1 = 1"
        quarantine_age = self.retention.age("quarantine")
        if quarantine_age is not None:
            entry_stays = "NOT (q.state = 'reprocessed' AND q.updated_at < ?)"
            params.append(self.cutoff("quarantine", self.clock(), quarantine_age))
        condition = (
            "NOT EXISTS (SELECT 1 FROM events e WHERE e.raw_id = raw_callbacks.id"  # noqa: S608
            f" AND {event_stays}) AND NOT EXISTS (SELECT 1 FROM quarantine q"
            f" WHERE q.raw_id = raw_callbacks.id AND {entry_stays})"
        )
        return condition, params

    async def _prune(
        self, kind: Kind, cutoff: Any, hold: int, outcome: KindReport, progress: Progress | None
    ) -> None:
        after: tuple[Any, int] | None = None  # the (time, key) the last batch ended at
        while True:
            started = time.monotonic()
            batch = await self.database.transact(self._batch(kind, cutoff, hold, after))
            if batch is None:  # another process prunes now: leave it the pass
                outcome.skipped = True
                return
            deleted, after = batch
            outcome.deleted += deleted
            self.pruned[kind] += deleted
            if deleted and progress is not None:
                progress(kind, outcome.deleted)
            if after is None:
                return
            # As long again without the lock: ingest commits between two batches.
            await asyncio.sleep(time.monotonic() - started)

    def _batch(
        self, kind: Kind, cutoff: Any, hold: int, after: tuple[Any, int] | None
    ) -> Transaction[tuple[int, tuple[Any, int] | None] | None]:
        """One batch: at most `batch` rows older than `cutoff`, after `after` in time order;
        those of them that may go are deleted. Returns (deleted, where the next batch
        starts; None: done), or None when another process holds the prune lock."""
        spec = TABLES[kind]
        if self.database.dialect.name == "postgres":
            (row,) = yield Fetch("SELECT pg_try_advisory_xact_lock(?)", (PRUNE_LOCK,))
            if not row[0]:
                return None
        hold_params = [hold] if "?" in spec.deletable else []
        where = f"{spec.scope} AND {spec.time} < ?"
        params: list[Any] = [cutoff]
        if after is not None:
            where += f" AND ({spec.time}, {spec.key}) > (?, ?)"
            params += list(after)
        if kind == "events":  # held events are never candidates: not rescanned batch by batch
            where += " AND seq <= ?"
            params.append(hold)
        # The candidates, then the delete re-checks which may go: a condition in the WHERE
        # of the DELETE is an anti-join on an index; in the SELECT's columns PostgreSQL
        # planned it as a scan of every event, per batch.
        rows = yield Fetch(
            f"SELECT {spec.time}, {spec.key} FROM {spec.table} WHERE {where}"  # noqa: S608
            f" ORDER BY {spec.time}, {spec.key} LIMIT ?",
            [*params, self.retention.batch],
        )
        if not rows:
            return 0, None
        keys = [int(key) for _, key in rows]
        marks = ",".join("?" * len(keys))
        gone = yield Fetch(
            f"DELETE FROM {spec.table} WHERE {spec.key} IN ({marks})"  # noqa: S608
            f" AND {spec.deletable} RETURNING {spec.key}",
            [*keys, *hold_params],
        )
        deleted = len(gone)
        if kind == "quarantine" and gone:
            yield from _remember_dropped(max(int(key) for (key,) in gone))
        last_time, last_key = rows[-1][0], int(rows[-1][1])
        done = len(rows) < self.retention.batch
        return deleted, None if done else (last_time, last_key)


def _remember_dropped(entry_id: int) -> Transaction[None]:
    """As `dlrhub quarantine drop` does: a new entry never takes the id of a deleted one."""
    yield Execute(
        "INSERT INTO meta (key, value) VALUES ('quarantine_last_dropped', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = CASE"
        " WHEN CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT)"
        " THEN excluded.value ELSE meta.value END",
        (str(entry_id),),
    )


class RetentionMetrics(Collector):
    """Rows pruned and the oldest row's age, per kind, read from the pruner at scrape time."""

    def __init__(self, pruner: Pruner) -> None:
        self.pruner = pruner

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        pruned = CounterMetricFamily(
            "dlrhub_retention_pruned_rows", "Rows deleted by retention.", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "dlrhub_retention_oldest_age_seconds",
            "Age of the oldest row of each kind retention prunes (0: none).",
            labels=["kind"],
        )
        for kind in KINDS:
            pruned.add_metric([kind], self.pruner.pruned[kind])
            oldest.add_metric([kind], self.pruner.oldest_age[kind])
        yield pruned
        yield oldest


class RetentionService:
    """The pruner as a background `Service` of `dlrhub serve`: a pass every `interval`."""

    def __init__(
        self,
        database: Database,
        retention: RetentionConfig,
        sinks: Sequence[HeldSink],
        place: Place | None = None,
    ) -> None:
        self.database = database
        self.retention = retention
        self.pruner = Pruner(database, retention, sinks, place=place)
        self._task: asyncio.Task[None] | None = None

    def collector(self) -> Collector:
        return RetentionMetrics(self.pruner)

    async def start(self) -> None:
        await self.database.open()
        self._task = asyncio.create_task(self._run(), name="dlrhub-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # a batch cut short rolls back: nothing half-deleted
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.database.close()

    async def _run(self) -> None:
        while True:
            try:
                report = await self.pruner.run_pass()
                if report.deleted:
                    done = ", ".join(f"{k.kind} {k.deleted}" for k in report.kinds if k.deleted)
                    log.info("retention pruned %s", done)
            except StoreUnavailable as error:
                log.warning("retention could not prune now, will try again: %s", error)
            await asyncio.sleep(self.retention.interval)


async def held_back(
    database: Database, retention: RetentionConfig, sinks: Sequence[HeldSink]
) -> tuple[str, int] | None:
    """The sink whose cursor keeps events older than `retention.events`, and how many."""
    age = retention.age("events")
    if age is None:
        return None
    pruner = Pruner(database, retention, sinks)
    hold, held_by = await pruner.hold()
    if held_by is None:
        return None
    cutoff = pruner.cutoff("events", pruner.clock(), age)
    rows = await database.read(
        "SELECT count(*) FROM events WHERE received_at < ? AND seq > ?", [cutoff, hold]
    )
    waiting = int(rows[0][0])
    return (held_by, waiting) if waiting else None
