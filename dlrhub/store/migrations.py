"""Versioned schema migrations, written once for SQLite and PostgreSQL.

Every process checks the schema when it opens the store; the table
`schema_migrations` records each applied version. What a process does with
what it finds:

| the database                       | `auto` (SQLite)         | `check` (PostgreSQL)          |
|------------------------------------|-------------------------|-------------------------------|
| empty (no dlrhub table)            | created                 | created                       |
| older (pending migrations)         | migrated                | refused: run `dlrhub migrate` |
| current                            | runs                    | runs                          |
| newer, every newer step compatible | runs (rolling upgrade)  | runs (rolling upgrade)        |
| newer, a step not compatible       | refused: upgrade dlrhub | refused: upgrade dlrhub       |

A migration is `compatible_with_older` when the previous dlrhub still runs
correctly against it (new tables, new nullable columns that the old code
leaves empty, new indexes): then a rolling upgrade works, new processes
migrate (or `dlrhub migrate` runs) while old ones keep serving. A step that
breaks older code is recorded as such, and older processes refuse to start.

A database made before versions existed (before issue 14) has the tables of
version 1 and no `schema_migrations`: version 1 uses `IF NOT EXISTS`, so
migrating it only records version 1 and applies the later ones.

All pending migrations run in one transaction under the writers' lock (the
same that serializes ingest commits): two processes starting at once migrate
once, and a failed migration leaves the schema as it was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dlrhub.analytics import histogram
from dlrhub.analytics.facts import BREAKDOWN
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.event import Event, format_time
from dlrhub.store import rollups
from dlrhub.store.base import StoreUnavailable
from dlrhub.store.dialect import Dialect
from dlrhub.store.message_search import reversed_digits
from dlrhub.store.sql_statements import Execute, ExecuteMany, Fetch, Transaction, now_text

MigrationMode = Literal["auto", "check"]
Step = str | Callable[[Dialect], Transaction[None]]


class SchemaError(StoreUnavailable):
    """This dlrhub cannot run against the database's schema; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    steps: tuple[Step, ...]
    compatible_with_older: bool = True


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """What `prepare_schema` found and did."""

    before: int  # the version found (0: empty, or made before versions existed)
    after: int
    applied: list[int] = field(default_factory=list)
    newer: bool = False  # made by a newer dlrhub, whose steps this one runs against

    def describe(self) -> str:
        if self.applied:
            applied = ", ".join(str(version) for version in self.applied)
            return f"schema migrated from version {self.before} to {self.after} (applied {applied})"
        if self.newer:
            return (
                f"schema is at version {self.after}, newer than this dlrhub ({LATEST}),"
                " and declared compatible with it"
            )
        return f"schema is at version {self.after}; nothing to do"


# Version 1: the tables as they were before versions existed (December 2026).
EVENT_LOG = """
CREATE TABLE IF NOT EXISTS raw_callbacks (
    id {bigint} PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    query TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body {bytes} NOT NULL,
    remote_addr TEXT,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq {bigint} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    raw_id {bigint},
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT,
    message_id TEXT,
    doc {bytes} NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_message ON events (provider, message_id);
CREATE INDEX IF NOT EXISTS events_by_raw ON events (raw_id);
CREATE TABLE IF NOT EXISTS messages (
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    provider_status TEXT,
    rank INTEGER NOT NULL,
    ordering_us {bigint} NOT NULL,
    last_seq {bigint} NOT NULL,
    recipient TEXT,
    correlation_id TEXT,
    PRIMARY KEY (provider, message_id)
);
CREATE TABLE IF NOT EXISTS quarantine (
    id {bigint} PRIMARY KEY,
    raw_id {bigint} NOT NULL UNIQUE REFERENCES raw_callbacks (id),
    reason TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""

SINK_STATE = """
CREATE TABLE IF NOT EXISTS sink_cursors (
    sink TEXT PRIMARY KEY,
    after_seq {bigint} NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    last_error TEXT,
    last_error_at TEXT,
    last_delivered_at TEXT,
    delivered {bigint} NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_dead_letters (
    id {serial},
    sink TEXT NOT NULL,
    seq {bigint} NOT NULL,
    event_id TEXT NOT NULL,
    doc {bytes} NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'dead',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sink_dead_letters_by_sink ON sink_dead_letters (sink, state, id);
CREATE TABLE IF NOT EXISTS sink_replays (
    id {serial},
    sink TEXT NOT NULL,
    after_seq {bigint} NOT NULL,
    until_seq {bigint} NOT NULL,
    created_at TEXT NOT NULL
)
"""

TRACKING = """
CREATE TABLE IF NOT EXISTS tracked_messages (
    id {serial},
    account TEXT NOT NULL,
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient TEXT,
    correlation_id TEXT,
    channel TEXT NOT NULL,
    sending_id TEXT,
    created_us {bigint} NOT NULL,
    status TEXT,
    provider_status TEXT,
    last_event_us {bigint},
    next_poll_us {bigint},
    attempts INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    stopped_reason TEXT,
    stopped_us {bigint},
    UNIQUE (account, message_id)
);
CREATE INDEX IF NOT EXISTS tracked_due ON tracked_messages (account, next_poll_us)
    WHERE next_poll_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS tracked_by_sending ON tracked_messages (account, sending_id, recipient)
    WHERE sending_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS request_budget (
    account TEXT PRIMARY KEY,
    next_us {bigint} NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking_pauses (
    account TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_us {bigint} NOT NULL,
    until_us {bigint} NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking_bad_answers (
    account TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    last_us {bigint} NOT NULL
)
"""

# Version 2: what searches and retention filter on, as indexed columns of the log.
EVENT_COLUMNS = """
ALTER TABLE events ADD COLUMN received_at TEXT;
ALTER TABLE events ADD COLUMN occurred_at TEXT;
ALTER TABLE events ADD COLUMN recipient TEXT;
ALTER TABLE events ADD COLUMN correlation_id TEXT
"""

EVENT_INDEXES = """
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
CREATE INDEX IF NOT EXISTS events_by_recipient ON events (recipient, seq)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_correlation ON events (correlation_id, seq)
    WHERE correlation_id IS NOT NULL
"""

# Version 3: several sink workers on one database (dlrhub/store/sink_leases.py), and
# retry counts that survive a restart (dlrhub/store/sink_state_sql.py).
SINK_WORKERS = """
CREATE TABLE IF NOT EXISTS sink_leases (
    sink TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token {bigint} NOT NULL,
    expires_us {bigint} NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_workers (
    owner TEXT PRIMARY KEY,
    heartbeat_us {bigint} NOT NULL
);
CREATE TABLE IF NOT EXISTS sink_attempts (
    sink TEXT NOT NULL,
    seq {bigint} NOT NULL,
    attempts INTEGER NOT NULL,
    first_failure_us {bigint} NOT NULL,
    PRIMARY KEY (sink, seq)
)
"""

BACKFILL_PAGE = 5_000


def backfill_event_columns(dialect: Dialect) -> Transaction[None]:
    """Fill the new columns of existing events from their documents, a page at a time."""
    after = 0
    while rows := (
        yield Fetch(
            "SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, BACKFILL_PAGE),
        )
    ):
        updates = []
        for seq, doc in rows:
            event = Event.from_json(bytes(doc))
            updates.append((*event_columns(event), int(seq)))
        yield ExecuteMany(
            "UPDATE events SET received_at = ?, occurred_at = ?, recipient = ?,"
            " correlation_id = ? WHERE seq = ?",
            updates,
        )
        after = int(rows[-1][0])


def event_columns(event: Event) -> tuple[str, str | None, str | None, str | None]:
    """The indexed columns of an event row (version 2), in the order of `INSERT_EVENT`."""
    occurred = format_time(event.occurred_at) if event.occurred_at is not None else None
    return (format_time(event.received_at), occurred, event.recipient, event.correlation_id)


# Version 3: what retention prunes by (dlrhub/store/retention.py), in time order. Events
# by (received_at, seq), replacing version 2's (received_at): on PostgreSQL a batch in
# time order then reads the index instead of sorting every old event (SQLite's index
# held the rowid, seq, already).
RETENTION_INDEXES = """
CREATE INDEX IF NOT EXISTS events_by_received_seq ON events (received_at, seq);
DROP INDEX IF EXISTS events_by_received;
CREATE INDEX IF NOT EXISTS raw_callbacks_by_received ON raw_callbacks (received_at, id);
CREATE INDEX IF NOT EXISTS tracked_stopped ON tracked_messages (stopped_us, id)
    WHERE stopped_us IS NOT NULL
"""

# Version 5: the operator console (issue 15). Messages searched by a suffix of the
# recipient's digits (`recipient_rev`, the digits reversed: a suffix is then a prefix,
# an index range), and by each filter, newest first (dlrhub/store/message_search.py);
# callbacks counted per minute, source and outcome in the commit that stores them.
# Compatible: an older dlrhub leaves `recipient_rev` and the counts alone; during a
# rolling upgrade, messages only it wrote are not found by recipient, and callbacks
# only it stored are not counted.
CONSOLE_COLUMNS = """
ALTER TABLE messages ADD COLUMN recipient_rev TEXT;
CREATE TABLE IF NOT EXISTS callback_counts (
    minute_us {bigint} NOT NULL,
    source TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count {bigint} NOT NULL,
    PRIMARY KEY (minute_us, source, outcome)
)
"""

CONSOLE_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_by_last_seq ON messages (last_seq);
CREATE INDEX IF NOT EXISTS messages_by_recipient_rev ON messages (recipient_rev, last_seq)
    WHERE recipient_rev IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_correlation ON messages (correlation_id, last_seq)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_message_id ON messages (message_id, last_seq);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (status, last_seq);
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (source, last_seq);
CREATE INDEX IF NOT EXISTS messages_by_provider ON messages (provider, last_seq)
"""


def backfill_recipient_rev(dialect: Dialect) -> Transaction[None]:
    """Fill `recipient_rev` of existing messages, a page at a time (before its index)."""
    after: tuple[str, str] = ("", "")
    while rows := (
        yield Fetch(
            "SELECT provider, message_id, recipient FROM messages"
            " WHERE (provider, message_id) > (?, ?) ORDER BY provider, message_id LIMIT ?",
            (*after, BACKFILL_PAGE),
        )
    ):
        updates = [
            (reversed_digits(recipient), provider, message_id)
            for provider, message_id, recipient in rows
            if recipient is not None
        ]
        if updates:
            yield ExecuteMany(
                "UPDATE messages SET recipient_rev = ? WHERE provider = ? AND message_id = ?",
                updates,
            )
        after = (str(rows[-1][0]), str(rows[-1][1]))


# Version 7: the console's and `GET /v1/tracking`'s lists of an account's tracked rows
# by state or stop reason, in id order (dlrhub/store/tracking_sql.py `tracked_query`).
TRACKED_BY_REASON = """
CREATE INDEX IF NOT EXISTS tracked_by_reason ON tracked_messages (account, stopped_reason, id)
"""

# Version 6: each sink delivery attempt of an event, for the message page (issue 15):
# written by the sink engine (dlrhub/sinks/attempts.py), pruned with the events by seq
# (dlrhub/store/retention.py). `DOUBLE PRECISION` has REAL affinity on SQLite.
DELIVERY_ATTEMPTS = """
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id {serial},
    sink TEXT NOT NULL,
    seq {bigint} NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_us {bigint} NOT NULL,
    outcome TEXT NOT NULL,
    duration_ms DOUBLE PRECISION,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS delivery_attempts_by_event ON delivery_attempts (event_id);
CREATE INDEX IF NOT EXISTS delivery_attempts_by_seq ON delivery_attempts (seq, id)
"""

# Version 8: delivery analytics (issue 16): the tables of dlrhub/store/rollups.py, then
# the rollups of the events already stored (numbers without `+` are read in no region
# here: `dlrhub analytics rebuild` reads them again once `default_region` is set).
ROLLUP_SCHEMA = rollups.SCHEMA


def roll_up_stored_events(dialect: Dialect) -> Transaction[None]:
    yield from rollups.rebuild(NumberPlaces().place_for({}), dialect)


# Version 9: alerts, open then resolved, with their history (dlrhub/store/alerts_sql.py).
ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    id {serial},
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    group_key TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_us {bigint} NOT NULL,
    resolved_us {bigint},
    value {float},
    last_value {float},
    threshold {float},
    message TEXT NOT NULL,
    resolve_message TEXT,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (rule, group_key) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, id);
CREATE TABLE IF NOT EXISTS alert_samples (
    rule TEXT NOT NULL,
    group_key TEXT NOT NULL,
    at_us {bigint} NOT NULL,
    value {bigint} NOT NULL,
    PRIMARY KEY (rule, group_key, at_us)
);
CREATE TABLE IF NOT EXISTS alert_leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token {bigint} NOT NULL,
    expires_us {bigint} NOT NULL
)
"""


def create_alert_tables(dialect: Dialect) -> Transaction[None]:
    """`ALERTS` with a double-precision column type (PostgreSQL's REAL is single)."""
    real = "DOUBLE PRECISION" if dialect.name == "postgres" else "REAL"
    for statement in dialect.ddl(ALERTS.replace("{float}", real)).split(";"):
        if statement.strip():
            yield Execute(statement.strip())


# Version 10: hour cells' time-to-receipt histograms packed one row per cell, as the days'
# were (dlrhub/store/rollups.py); version 8's rows per bucket are packed, then dropped.
def pack_hour_histograms(dialect: Dialect) -> Transaction[None]:
    dims = ", ".join(BREAKDOWN)
    periods = yield Fetch("SELECT DISTINCT grain, period_us FROM delivery_latency ORDER BY 1, 2")
    for grain, period_us in periods:  # a period's cells at a time: bounded memory
        rows = yield Fetch(
            f"SELECT {dims}, bucket, count FROM delivery_latency"  # noqa: S608 (constants)
            " WHERE grain = ? AND period_us = ?",
            (grain, period_us),
        )
        cells: defaultdict[tuple[object, ...], dict[int, int]] = defaultdict(dict)
        for *values, bucket, count in rows:
            if int(count):
                cells[(str(grain), int(period_us), *values)][int(bucket)] = int(count)
        packed = {key: histogram.pack(counts) for key, counts in sorted(cells.items(), key=str)}
        yield from rollups.Folded([], [], packed).statements(dialect)
    yield Execute("DROP TABLE delivery_latency")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "event log, sink state and tracking tables", (EVENT_LOG, SINK_STATE, TRACKING)),
    Migration(
        2,
        "indexed event columns: received_at, occurred_at, recipient, correlation_id",
        (EVENT_COLUMNS, backfill_event_columns, EVENT_INDEXES),
    ),
    Migration(
        3, "retention: raw callbacks and stopped tracking rows by time", (RETENTION_INDEXES,)
    ),
    Migration(4, "sink leases, sink workers and durable retry counts", (SINK_WORKERS,)),
    Migration(
        5,
        "operator console: messages by recipient digits and each filter, callback counts",
        (CONSOLE_COLUMNS, backfill_recipient_rev, CONSOLE_INDEXES),
    ),
    Migration(6, "delivery attempts of each event, per sink", (DELIVERY_ATTEMPTS,)),
    Migration(7, "tracked rows by account, stop reason and id", (TRACKED_BY_REASON,)),
    Migration(
        8,
        "delivery analytics: message facts and hourly and daily rollups",
        (ROLLUP_SCHEMA, roll_up_stored_events),
    ),
    Migration(9, "alerts: open and resolved, evaluation samples and lease", (create_alert_tables,)),
    Migration(
        10,
        "hour cells' time-to-receipt histograms packed one row per cell",
        (pack_hour_histograms,),
        compatible_with_older=False,  # version 9 writes the dropped delivery_latency
    ),
)
LATEST = MIGRATIONS[-1].version

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    compatible_with_older INTEGER NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def prepare_schema(
    dialect: Dialect, mode: MigrationMode, migrations: Sequence[Migration] = MIGRATIONS
) -> Transaction[SchemaReport]:
    """Check the schema and, where `mode` allows, migrate it (see the module docstring).

    Run it in a write transaction that holds the writers' lock.
    """
    latest = migrations[-1].version
    existed = bool((yield Fetch(dialect.table_exists, ("schema_migrations",))))
    found: dict[int, bool] = {}
    if existed:
        rows = yield Fetch("SELECT version, compatible_with_older FROM schema_migrations")
        found = {int(version): bool(compatible) for version, compatible in rows}
    current = max(found, default=0)
    if current > latest:
        breaking = sorted(version for version, ok in found.items() if version > latest and not ok)
        if breaking:
            raise SchemaError(
                f"the database's schema is at version {current}, made by a newer dlrhub, and its"
                f" migration {breaking[0]} does not let older versions run; this dlrhub knows"
                f" versions up to {latest}: upgrade it"
            )
        return SchemaReport(current, current, newer=True)
    pending = [migration for migration in migrations if migration.version not in found]
    if not pending:
        return SchemaReport(current, current)
    empty = current == 0 and not (yield Fetch(dialect.table_exists, ("events",)))
    if mode == "check" and not empty:
        raise SchemaError(
            f"the database's schema is at version {current}; this dlrhub needs version {latest}:"
            ' run `dlrhub migrate` (store.migrate = "check")'
        )
    if not existed:
        yield Execute(CREATE_LEDGER.strip())
    for migration in pending:
        for step in migration.steps:
            if isinstance(step, str):
                for statement in dialect.ddl(step).split(";"):
                    if statement.strip():
                        yield Execute(statement.strip())
            else:
                yield from step(dialect)
        yield Execute(
            "INSERT INTO schema_migrations (version, name, compatible_with_older, applied_at)"
            " VALUES (?, ?, ?, ?)",
            (migration.version, migration.name, int(migration.compatible_with_older), now_text()),
        )
    return SchemaReport(current, latest, [migration.version for migration in pending])
