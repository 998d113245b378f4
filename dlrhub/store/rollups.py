"""Delivery rollups: kept up to date from the event log, just after events are committed.

Per message, its facts (`delivery_facts`, one row like `messages`, never
pruned); per hour and per UTC day of the cohort and each breakdown (provider,
source, sender, channel, country, operator): counts by final status, the
time-to-receipt histogram and the failure reasons (`delivery_reasons`);
engagement counts per hour and day (`engagement_rollups`). The measures are
`dlrhub/analytics/facts.py`.

Rolling up follows the log with a cursor (`meta` key `rollups_after_seq`), as
a sink does, in pages of up to `PAGE` events (`catch_up`), each page with its
cursor in one transaction: every event is counted exactly once. The store's
writer runs a page once it has answered a batch, when it is idle or `PAGE`
events have piled up, so a callback's answer never waits for the rollups, and a
busy writer rolls up thousands of events at a time (a page's cells and facts
are shared by many of its events: about half the CPU per event of rolling up
each commit's few events inside it; bench/README.md). Reads catch up first
(`SQLStore.delivery_sums`), so an answer counts every event committed before
it. On PostgreSQL an advisory lock lets one process roll up at a time.

A page's message events are folded into their messages' facts in log order;
each changed message takes its old contribution away and adds its new one,
as additive upserts (`count = count + ?`), so those rows never need reading
here and writers in several processes (serialized by the writers' lock) add up.
Day rows let a month's query read thirty rows per breakdown instead of 720.

The histogram of an hour cell is a row per bucket (`delivery_latency`: an hour
cell holds a few messages). A day cell's is packed in one row
(`delivery_histograms`, `histogram.pack`): a day cell of a hundred messages
spreads over some fifty buckets, so per-bucket day rows were half as many as
the messages and a month's query spent 200-800 ms reading them (bench/README.md).
Packed counts are not added by an upsert: a page reads the day cells it
touches, adds, and writes them back, safe under the rollup lock it holds
(PostgreSQL; SQLite's one writer at a time).

`rebuild` (`dlrhub analytics rebuild`, and migration 8 for the events stored
before it) recomputes from the event log with the same fold: the cohorts from
the first UTC day whose events are all still kept (everything when nothing
was ever pruned). It runs in one transaction holding the writers' lock, so
ingest waits for it: minutes for millions of events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from dlrhub.analytics import histogram
from dlrhub.analytics.facts import (
    BREAKDOWN,
    DAY_US,
    HOUR_US,
    SETTLED,
    MessageFacts,
    Place,
    advance,
    contribution,
    counts_as_message,
    engagement_kind,
)
from dlrhub.event import Event, epoch_micros, parse_time
from dlrhub.store.dialect import Dialect
from dlrhub.store.sql_statements import Execute, ExecuteMany, Fetch, Transaction

GRAINS = (("hour", HOUR_US), ("day", DAY_US))
_DIMS = ", ".join(BREAKDOWN)
_KEY = f"grain, period_us, {_DIMS}"
COUNTERS = ("messages", *SETTLED, "within_5s", "within_60s", "within_600s", "latency_ms_sum")
_SETTLED_INDEX = {status: COUNTERS.index(status) for status in SETTLED}
_WITHIN_INDEX = COUNTERS.index("within_5s")
_LATENCY_INDEX = COUNTERS.index("latency_ms_sum")
REBUILD_PAGE = 5000
PAGE = 2000  # events per catch-up transaction
CURSOR = "rollups_after_seq"  # the meta key of the last event rolled up
ROLLUP_LOCK = 0x646C7275  # "dlru": PostgreSQL's advisory lock for rolling up
MAX_KEYS = 500
NOTHING_KEPT = 2**62  # a cohort boundary past every time: nothing is recomputed

# A cell's columns, the key of every rollup table: a grain's period and a breakdown.
_CELL = ",\n    ".join(
    ["grain TEXT NOT NULL", "period_us {bigint} NOT NULL"]
    + [f"{name} TEXT NOT NULL" for name in BREAKDOWN]
)

# Day cells' histograms, packed in one row each (see the module docstring).
HISTOGRAM_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS delivery_histograms (
    {_CELL},
    counts {{bytes}} NOT NULL,
    PRIMARY KEY ({_KEY})
)
"""

# Version 8 of the schema (dlrhub/store/migrations.py).
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS delivery_facts (
    provider TEXT NOT NULL,
    message_id TEXT NOT NULL,
    source TEXT NOT NULL,
    sender TEXT NOT NULL,
    channel TEXT NOT NULL,
    country TEXT NOT NULL,
    operator TEXT NOT NULL,
    submitted_us {{bigint}} NOT NULL,
    by_send INTEGER NOT NULL,
    final_status TEXT,
    final_us {{bigint}} NOT NULL,
    reason TEXT NOT NULL,
    error_code TEXT NOT NULL,
    PRIMARY KEY (provider, message_id)
);
CREATE INDEX IF NOT EXISTS delivery_facts_by_submitted ON delivery_facts (submitted_us);
CREATE TABLE IF NOT EXISTS delivery_rollups (
    {_CELL},
    {", ".join(f"{name} {{bigint}} NOT NULL DEFAULT 0" for name in COUNTERS)},
    PRIMARY KEY ({_KEY})
);
CREATE TABLE IF NOT EXISTS delivery_latency (
    {_CELL},
    bucket INTEGER NOT NULL,
    count {{bigint}} NOT NULL,
    PRIMARY KEY ({_KEY}, bucket)
);
CREATE TABLE IF NOT EXISTS delivery_reasons (
    {_CELL},
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    error_code TEXT NOT NULL,
    count {{bigint}} NOT NULL,
    PRIMARY KEY ({_KEY}, status, reason, error_code)
);
{HISTOGRAM_SCHEMA};
CREATE TABLE IF NOT EXISTS engagement_rollups (
    grain TEXT NOT NULL,
    period_us {{bigint}} NOT NULL,
    provider TEXT NOT NULL,
    source TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    count {{bigint}} NOT NULL,
    PRIMARY KEY (grain, period_us, provider, source, channel, kind)
)
"""

_FACT_COLUMNS = (
    "provider, message_id, source, sender, channel, country, operator, submitted_us, by_send,"
    " final_status, final_us, reason, error_code"
)
UPSERT_FACTS = f"""
INSERT INTO delivery_facts ({_FACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (provider, message_id) DO UPDATE SET
    source = excluded.source, sender = excluded.sender, channel = excluded.channel,
    country = excluded.country, operator = excluded.operator,
    submitted_us = excluded.submitted_us, by_send = excluded.by_send,
    final_status = excluded.final_status, final_us = excluded.final_us,
    reason = excluded.reason, error_code = excluded.error_code
"""  # noqa: S608 (table and column names are constants)
_PLACES = ", ".join("?" * (2 + len(BREAKDOWN) + len(COUNTERS)))
ADD_ROLLUP = f"""
INSERT INTO delivery_rollups ({_KEY}, {", ".join(COUNTERS)}) VALUES ({_PLACES})
ON CONFLICT ({_KEY}) DO UPDATE SET
    {", ".join(f"{name} = delivery_rollups.{name} + excluded.{name}" for name in COUNTERS)}
"""  # noqa: S608 (table and column names are constants)
_KEY_PLACES = ", ".join("?" * (2 + len(BREAKDOWN)))
ADD_LATENCY = f"""
INSERT INTO delivery_latency ({_KEY}, bucket, count) VALUES ({_KEY_PLACES}, ?, ?)
ON CONFLICT ({_KEY}, bucket) DO UPDATE SET count = delivery_latency.count + excluded.count
"""  # noqa: S608 (table and column names are constants)
ADD_REASON = f"""
INSERT INTO delivery_reasons ({_KEY}, status, reason, error_code, count)
VALUES ({_KEY_PLACES}, ?, ?, ?, ?)
ON CONFLICT ({_KEY}, status, reason, error_code)
DO UPDATE SET count = delivery_reasons.count + excluded.count
"""  # noqa: S608 (table and column names are constants)
ADD_ENGAGEMENT = """
INSERT INTO engagement_rollups (grain, period_us, provider, source, channel, kind, count)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (grain, period_us, provider, source, channel, kind)
DO UPDATE SET count = engagement_rollups.count + excluded.count
"""
_HISTOGRAM_KEY = " AND ".join(f"{name} = ?" for name in ("grain", "period_us", *BREAKDOWN))
HISTOGRAM_OF = f"SELECT counts FROM delivery_histograms WHERE {_HISTOGRAM_KEY}"  # noqa: S608
HISTOGRAMS_OF = f"""
SELECT h.grain, h.period_us, h.{", h.".join(BREAKDOWN)}, h.counts
FROM unnest(?::text[], ?::bigint[], {", ".join(["?::text[]"] * len(BREAKDOWN))})
    AS k (grain, period_us, {_DIMS})
JOIN delivery_histograms h ON {" AND ".join(f"h.{name} = k.{name}" for name in _KEY.split(", "))}
"""  # noqa: S608 (table and column names are constants)
PUT_HISTOGRAM = f"""
INSERT INTO delivery_histograms ({_KEY}, counts) VALUES ({_KEY_PLACES}, ?)
ON CONFLICT ({_KEY}) DO UPDATE SET counts = excluded.counts
"""  # noqa: S608 (table and column names are constants)
ROLLUP_TABLES = (
    "delivery_rollups",
    "delivery_latency",
    "delivery_histograms",
    "delivery_reasons",
    "engagement_rollups",
)
PACKED_GRAINS = ("day",)  # their histograms are packed in `delivery_histograms`


@dataclass(slots=True)
class _Deltas:
    """What a batch adds to each rollup row (negative: a message moved out of it)."""

    rollups: defaultdict[tuple[object, ...], list[int]]
    latency: Counter[tuple[object, ...]]
    reasons: Counter[tuple[object, ...]]
    engagement: Counter[tuple[object, ...]]

    @classmethod
    def empty(cls) -> _Deltas:
        return cls(defaultdict(lambda: [0] * len(COUNTERS)), Counter(), Counter(), Counter())

    def add(self, facts: MessageFacts, sign: int) -> None:
        part = contribution(facts)
        changes = [(0, sign)]  # (index in COUNTERS, change): messages, then what is not 0
        if part.final_status is not None:
            changes.append((_SETTLED_INDEX[part.final_status], sign))
            changes += [(_WITHIN_INDEX + i, sign) for i, inside in enumerate(part.within) if inside]
            changes.append((_LATENCY_INDEX, sign * part.latency_ms))
        for grain, width in GRAINS:
            key = (grain, facts.submitted_us // width * width, *part.breakdown)
            row = self.rollups[key]
            for index, change in changes:
                row[index] += change
            if part.latency_bucket is not None:
                self.latency[(*key, part.latency_bucket)] += sign
            if part.reason is not None:
                self.reasons[(*key, *part.reason)] += sign

    def count_engagement(self, event: Event, kind: str) -> None:
        at = epoch_micros(event.ordering_time)
        for grain, width in GRAINS:
            key = (grain, at // width * width, event.provider, event.source, event.channel or "")
            self.engagement[(*key, kind)] += 1

    def statements(self, dialect: Dialect) -> Transaction[None]:
        hourly = Counter({key: n for key, n in self.latency.items() if key[0] not in PACKED_GRAINS})
        rollups = [(*key, *row) for key, row in sorted(self.rollups.items()) if any(row)]
        for sql, rows in (
            (ADD_ROLLUP, rollups),
            (ADD_LATENCY, _nonzero(hourly)),
            (ADD_REASON, _nonzero(self.reasons)),
            (ADD_ENGAGEMENT, _nonzero(self.engagement)),
        ):
            if rows:
                yield ExecuteMany(sql, rows)
        yield from self._histogram_statements(dialect)

    def _histogram_statements(self, dialect: Dialect) -> Transaction[None]:
        """Day cells' packed histograms: read, added to, written back (no additive upsert
        adds packed counts; the rollup lock the transaction holds keeps this safe)."""
        changes: defaultdict[tuple[object, ...], dict[int, int]] = defaultdict(dict)
        for cell_bucket, count in self.latency.items():
            if count and cell_bucket[0] in PACKED_GRAINS:
                bucket = cell_bucket[-1]
                assert isinstance(bucket, int)
                cell = changes[cell_bucket[:-1]]
                cell[bucket] = cell.get(bucket, 0) + count
        if not changes:
            return
        keys = sorted(changes, key=str)
        stored: dict[tuple[object, ...], int] = {}
        if dialect.arrays:
            for start in range(0, len(keys), MAX_KEYS):
                chunk = keys[start : start + MAX_KEYS]
                columns = [list(column) for column in zip(*chunk, strict=True)]
                for row in (yield Fetch(HISTOGRAMS_OF, tuple(columns))):
                    stored[tuple(row[:-1])] = histogram.from_bytes(bytes(row[-1]))
        else:
            for key in keys:
                for (counts,) in (yield Fetch(HISTOGRAM_OF, key)):
                    stored[key] = histogram.from_bytes(bytes(counts))
        rows = []
        for key in keys:
            packed = stored.get(key, 0) + histogram.pack(changes[key])
            rows.append((*key, histogram.to_bytes(packed)))
        yield ExecuteMany(PUT_HISTOGRAM, rows)


def _nonzero(counts: Counter[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [(*key, count) for key, count in sorted(counts.items()) if count]


def roll_up(
    events: Sequence[Event], place: Place, dialect: Dialect, *, kept_from_us: int | None = None
) -> Transaction[int]:
    """Fold `events` (in log order) into the rollups; returns how many messages changed.

    `kept_from_us` (rebuild): messages whose stored facts are older than it keep them
    and their contribution, which the rebuild did not delete.
    """
    deltas = _Deltas.empty()
    events = [_without_nul(event) for event in events]
    messages = [event for event in events if counts_as_message(event)]
    before = yield from _facts_of({(e.provider, str(e.message_id)) for e in messages}, dialect)
    after: dict[tuple[str, str], MessageFacts] = dict(before)
    frozen = {
        key
        for key, facts in before.items()
        if kept_from_us is not None and facts.submitted_us < kept_from_us
    }
    for event in events:
        kind = engagement_kind(event)
        if kind is not None:
            deltas.count_engagement(event, kind)
        elif counts_as_message(event):
            key = (event.provider, str(event.message_id))
            if key not in frozen:
                after[key] = advance(after.get(key), event, place)
    changed = [facts for key, facts in after.items() if before.get(key) != facts]
    for facts in changed:
        old = before.get(facts.key)
        if old is not None:
            deltas.add(old, -1)
        deltas.add(facts, +1)
    if changed:
        yield ExecuteMany(UPSERT_FACTS, [_fact_row(facts) for facts in changed])
    yield from deltas.statements(dialect)
    return len(changed)


_TEXT_FIELDS = ("provider", "message_id", "source", "sender", "channel", "provider_status")


def _without_nul(event: Event) -> Event:
    """`event` with U+FFFD for NUL, as PostgreSQL stores text: a fact or a day cell read
    back then has the key it was looked up by, and both backends count the same."""
    changes = {
        name: value.replace("\x00", "\ufffd")
        for name in _TEXT_FIELDS
        if isinstance(value := getattr(event, name), str) and "\x00" in value
    }
    return msgspec.structs.replace(event, **changes) if changes else event


def _fact_row(facts: MessageFacts) -> tuple[object, ...]:
    return (
        facts.provider,
        facts.message_id,
        facts.source,
        facts.sender,
        facts.channel,
        facts.country,
        facts.operator,
        facts.submitted_us,
        int(facts.by_send),
        facts.final_status,
        facts.final_us,
        facts.reason,
        facts.error_code,
    )


def _facts_of(
    keys: set[tuple[str, str]], dialect: Dialect
) -> Transaction[dict[tuple[str, str], MessageFacts]]:
    """The stored facts of `keys`: on PostgreSQL one statement (a round trip) per chunk,
    on SQLite one per provider and chunk (its row-value `IN` would scan the table)."""
    found: dict[tuple[str, str], MessageFacts] = {}
    columns = ", ".join(f"f.{name.strip()}" for name in _FACT_COLUMNS.split(","))
    for query, params in _facts_queries(sorted(keys), dialect, columns):
        for row in (yield Fetch(query, params)):
            facts = MessageFacts(
                provider=str(row[0]),
                message_id=str(row[1]),
                source=str(row[2]),
                sender=str(row[3]),
                channel=str(row[4]),
                country=str(row[5]),
                operator=str(row[6]),
                submitted_us=int(row[7]),
                by_send=bool(row[8]),
                final_status=None if row[9] is None else str(row[9]),
                final_us=int(row[10]),
                reason=str(row[11]),
                error_code=str(row[12]),
            )
            found[facts.key] = facts
    return found


def _facts_queries(
    keys: list[tuple[str, str]], dialect: Dialect, columns: str
) -> Iterator[tuple[str, tuple[object, ...]]]:
    if dialect.arrays:
        join = (
            f"SELECT {columns} FROM unnest(?::text[], ?::text[]) AS k (provider, message_id)"  # noqa: S608
            " JOIN delivery_facts f ON f.provider = k.provider AND f.message_id = k.message_id"
        )
        for start in range(0, len(keys), MAX_KEYS):
            pairs = keys[start : start + MAX_KEYS]
            yield join, ([key[0] for key in pairs], [key[1] for key in pairs])
        return
    by_provider: defaultdict[str, list[str]] = defaultdict(list)
    for provider, message_id in keys:
        by_provider[provider].append(message_id)
    select = f"SELECT {columns} FROM delivery_facts f WHERE f.provider = ? AND f.message_id"  # noqa: S608
    for provider, ids in by_provider.items():
        for start in range(0, len(ids), MAX_KEYS):
            chunk = ids[start : start + MAX_KEYS]
            yield f"{select} IN ({','.join('?' * len(chunk))})", (provider, *chunk)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    from_us: int | None  # the first cohort recomputed; None: all of them
    events: int
    messages: int


def rebuild(place: Place, dialect: Dialect) -> Transaction[RebuildReport]:
    """Recompute the rollups from the kept events (see the module docstring)."""
    if dialect.name == "postgres":
        yield Execute(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK})")
    from_us = yield from _first_whole_kept_day()
    if from_us is None:
        for table in (*ROLLUP_TABLES, "delivery_facts"):
            yield Execute(f"DELETE FROM {table}")  # noqa: S608
    else:
        for table in ROLLUP_TABLES:
            yield Execute(f"DELETE FROM {table} WHERE period_us >= ?", (from_us,))  # noqa: S608
        yield Execute("DELETE FROM delivery_facts WHERE submitted_us >= ?", (from_us,))
    after_seq, events, messages = 0, 0, 0
    while True:
        rows = yield Fetch(
            "SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, REBUILD_PAGE),
        )
        if not rows:
            break
        page = [Event.from_json(doc).with_seq(int(seq)) for seq, doc in rows]
        if from_us is not None:  # engagement before the boundary is counted already
            page = [
                event
                for event in page
                if engagement_kind(event) is None or epoch_micros(event.ordering_time) >= from_us
            ]
        messages += yield from roll_up(page, place, dialect, kept_from_us=from_us)
        events += len(rows)
        after_seq = int(rows[-1][0])
    if after_seq:  # an empty log leaves the cursor where it was (and a new store's meta empty)
        yield from _move_cursor(after_seq)
    return RebuildReport(from_us, events, messages)


def catch_up(
    place: Place, dialect: Dialect, page: int = PAGE, *, wait: bool = True
) -> Transaction[int]:
    """Roll up the next events after the cursor, at most `page`; returns how many, or -1
    when another process is rolling up and `wait` is false (PostgreSQL)."""
    if dialect.name == "postgres":
        if not wait:
            (row,) = yield Fetch(f"SELECT pg_try_advisory_xact_lock({ROLLUP_LOCK})")
            if not row[0]:
                return -1
        else:
            yield Execute(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK})")
    rows = yield Fetch("SELECT value FROM meta WHERE key = ?", (CURSOR,))
    after_seq = int(rows[0][0]) if rows else 0
    rows = yield Fetch(
        "SELECT seq, doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, page)
    )
    if rows:
        yield from roll_up(
            [Event.from_json(doc).with_seq(int(seq)) for seq, doc in rows], place, dialect
        )
        yield from _move_cursor(int(rows[-1][0]))
    return len(rows)


def _move_cursor(after_seq: int) -> Transaction[None]:
    yield Execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (CURSOR, str(after_seq)),
    )


def _first_whole_kept_day() -> Transaction[int | None]:
    """The first UTC day after the oldest kept event's; None if no event was ever pruned.

    Seqs are gapless from 1 when stored, so fewer events than the last seq means some
    were pruned. An empty log with facts means all were: nothing is recomputed.
    """
    (row,) = yield Fetch("SELECT max(seq), count(*), min(received_at) FROM events")
    last, count, oldest = row
    if last is None:
        (facts,) = yield Fetch("SELECT count(*) FROM delivery_facts")
        return None if int(facts[0]) == 0 else NOTHING_KEPT
    if int(count) == int(last):
        return None
    return (epoch_micros(parse_time(str(oldest))) // DAY_US + 1) * DAY_US
