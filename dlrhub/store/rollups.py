"""Delivery rollups: kept up to date from the event log, just after events are committed.

Per message, its facts (`delivery_facts`, one row like `messages`, never
pruned); per hour and per UTC day of the cohort and each breakdown (provider,
source, sender, channel, country, operator): counts by final status, the
time-to-receipt histogram and the failure reasons (`delivery_reasons`);
engagement counts per hour and day (`engagement_rollups`). The measures are
`dlrhub/analytics/facts.py`.

Rolling up follows the log with a cursor (`meta` key `rollups_after_seq`), as
a sink does, in pages of up to `PAGE` events, each page's rows written with its
cursor in one transaction: every event is counted exactly once. The store's
writer does it in three steps, so that neither a callback's answer nor the
writer's next commit waits for the costly middle one: `read_page` (the
cursor, the events after it, their messages' facts; on a reader), `fold_page`
(pure: the rows to write; in the folding process, dlrhub/store/folding.py),
`apply_page` (the rows and the cursor, in a short transaction, unless the
cursor moved since the read: then the page is read again). It starts when it
has been idle for a moment or a page of events has piled up; reads catch up
first (`SQLStore.delivery_sums`), so an answer counts every event committed
before it. `catch_up` does all three in one transaction (the retention pass).
On PostgreSQL an advisory lock lets one process write rollups at a time.

A page's message events are folded into their messages' facts in log order;
each changed message takes its old contribution away and adds its new one,
as additive upserts (`count = count + ?`), so those rows never need reading
here.
Day rows let a month's query read thirty rows per breakdown instead of 720.

A cell's time-to-receipt histogram is packed in one row (`delivery_histograms`,
`histogram.pack`), hour and day cells alike: a cell of a hundred messages spreads
over some fifty buckets, so rows per bucket were half as many as the messages; a
month's query spent 200-800 ms reading the day rows and 40 ms the edge hours',
and writing them was a sixth of rolling up (bench/README.md). Packed counts are
not added by an upsert: a page reads the cells it touches, adds, and writes them
back, safe under the rollup lock it holds (PostgreSQL; SQLite's one writer at a
time). Migration 10 packed the hour rows of version 8's `delivery_latency`.

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
PAGE = 5000  # events per catch-up transaction
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
CREATE TABLE IF NOT EXISTS delivery_latency -- packed into delivery_histograms and dropped by 10
(
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
    "delivery_histograms",
    "delivery_reasons",
    "engagement_rollups",
)


@dataclass(slots=True)
class _Deltas:
    """What a batch adds to each rollup row (negative: a message moved out of it)."""

    rollups: defaultdict[tuple[object, ...], list[int]]
    latency: Counter[tuple[object, ...]]
    reasons: Counter[tuple[object, ...]]
    engagement: Counter[tuple[object, ...]]

    @classmethod
    def empty(cls) -> _Deltas:
        return cls(defaultdict(_no_counts), Counter(), Counter(), Counter())

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

    def folded(self, facts: list[tuple[object, ...]]) -> Folded:
        """The rows to write (`facts`: the changed messages' delivery_facts rows)."""
        additions = [
            (ADD_ROLLUP, [(*key, *row) for key, row in sorted(self.rollups.items()) if any(row)]),
            (ADD_REASON, _nonzero(self.reasons)),
            (ADD_ENGAGEMENT, _nonzero(self.engagement)),
        ]
        changes: defaultdict[tuple[object, ...], dict[int, int]] = defaultdict(dict)
        for cell_bucket, count in self.latency.items():
            if count:
                bucket = cell_bucket[-1]
                assert isinstance(bucket, int)
                cell = changes[cell_bucket[:-1]]
                cell[bucket] = cell.get(bucket, 0) + count
        histograms = {key: histogram.pack(changes[key]) for key in sorted(changes, key=str)}
        return Folded(facts, [(sql, rows) for sql, rows in additions if rows], histograms)


@dataclass(slots=True)
class Folded:
    """What folding events into their messages' facts gives: the rows to write. Made in
    the folding process (dlrhub/store/folding.py): the writer only runs the statements."""

    facts: list[tuple[object, ...]]  # delivery_facts rows of the changed messages
    additions: list[tuple[str, list[tuple[object, ...]]]]  # additive upserts, their rows
    histograms: dict[tuple[object, ...], int]  # cell -> packed change of its histogram
    # Its page (`fold_page`): the cursor it was read after, its last seq, how many events.
    after_seq: int = 0
    last_seq: int = 0
    events: int = 0

    def statements(self, dialect: Dialect) -> Transaction[None]:
        if self.facts:
            yield ExecuteMany(UPSERT_FACTS, self.facts)
        for sql, rows in self.additions:
            yield ExecuteMany(sql, rows)
        yield from self._histogram_statements(dialect)

    def _histogram_statements(self, dialect: Dialect) -> Transaction[None]:
        """Cells' packed histograms: read, added to, written back (no additive upsert
        adds packed counts; the rollup lock the transaction holds keeps this safe)."""
        if not self.histograms:
            return
        keys = list(self.histograms)
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
        rows = [
            (*key, histogram.to_bytes(stored.get(key, 0) + change))
            for key, change in self.histograms.items()
        ]
        yield ExecuteMany(PUT_HISTOGRAM, rows)


def _no_counts() -> list[int]:
    return [0] * len(COUNTERS)


def _nonzero(counts: Counter[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [(*key, count) for key, count in sorted(counts.items()) if count]


def fold(
    events: Sequence[Event],
    before: dict[tuple[str, str], MessageFacts],
    place: Place,
    kept_from_us: int | None = None,
) -> Folded:
    """Fold `events` (in log order, `_without_nul`) into `before`, their messages' stored
    facts. `kept_from_us` (rebuild): messages whose stored facts are older than it keep
    them and their contribution, which the rebuild did not delete. Pure: no I/O."""
    deltas = _Deltas.empty()
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
    return deltas.folded([_fact_row(facts) for facts in changed])


def roll_up(
    events: Sequence[Event], place: Place, dialect: Dialect, *, kept_from_us: int | None = None
) -> Transaction[int]:
    """Fold `events` (in log order) into the rollups; returns how many messages changed."""
    events = [_without_nul(event) for event in events]
    keys = {(e.provider, str(e.message_id)) for e in events if counts_as_message(e)}
    before = yield from _facts_of(keys, dialect)
    folded = fold(events, before, place, kept_from_us)
    yield from folded.statements(dialect)
    return len(folded.facts)


@dataclass(frozen=True, slots=True)
class Page:
    """The next events after the cursor and their messages' stored facts, as read."""

    after_seq: int  # the cursor when read
    events: list[tuple[int, bytes]]  # (seq, doc)
    facts: list[tuple[object, ...]]  # delivery_facts rows

    @property
    def last_seq(self) -> int:
        return self.events[-1][0] if self.events else self.after_seq


def read_page(page: int, dialect: Dialect) -> Transaction[Page]:
    """The cursor, the next `page` events and the facts of their messages (reads only:
    run inside a catch-up's transaction, or on a reader by the store's writer)."""
    after_seq = yield from _cursor()
    rows = yield Fetch(
        "SELECT seq, doc, provider, message_id FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, page),
    )
    keys = {
        (_nul_free(str(provider)), _nul_free(str(message_id)))
        for _, _, provider, message_id in rows
        if message_id is not None
    }
    facts = yield from _fact_rows_of(keys, dialect)
    return Page(after_seq, [(int(seq), bytes(doc)) for seq, doc, _, _ in rows], facts)


def fold_page(page: Page, place: Place) -> Folded:
    """`fold` a read page: pure, and what the store's writer runs in another process
    (dlrhub/store/folding.py), since it is most of rolling up's CPU."""
    events = [_without_nul(Event.from_json(doc).with_seq(seq)) for seq, doc in page.events]
    before = {facts.key: facts for facts in map(_facts_from_row, page.facts)}
    folded = fold(events, before, place)
    folded.after_seq, folded.last_seq, folded.events = (
        page.after_seq,
        page.last_seq,
        len(page.events),
    )
    return folded


def apply_page(folded: Folded, dialect: Dialect) -> Transaction[bool]:
    """Write a folded page's rows and move the cursor past it, unless the cursor moved
    since the page was read (another process or a pass rolled up first): then nothing
    is written and this returns False, for the page to be read again."""
    yield from _rollup_lock(dialect)
    if (yield from _cursor()) != folded.after_seq:
        return False
    yield from _write_page(folded, dialect)
    return True


def _write_page(folded: Folded, dialect: Dialect) -> Transaction[None]:
    yield from folded.statements(dialect)
    if folded.events:
        yield from move_cursor(folded.last_seq)


_TEXT_FIELDS = ("provider", "message_id", "source", "sender", "channel", "provider_status")


def _without_nul(event: Event) -> Event:
    """`event` with U+FFFD for NUL, as PostgreSQL stores text: a fact or a day cell read
    back then has the key it was looked up by, and both backends count the same."""
    changes = {
        name: _nul_free(value)
        for name in _TEXT_FIELDS
        if isinstance(value := getattr(event, name), str) and "\x00" in value
    }
    return msgspec.structs.replace(event, **changes) if changes else event


def _nul_free(text: str) -> str:
    return text.replace("\x00", "\ufffd")


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
    rows = yield from _fact_rows_of(keys, dialect)
    return {facts.key: facts for facts in map(_facts_from_row, rows)}


def _fact_rows_of(
    keys: set[tuple[str, str]], dialect: Dialect
) -> Transaction[list[tuple[object, ...]]]:
    """The stored facts rows of `keys`: on PostgreSQL one statement (a round trip) per
    chunk, on SQLite one per provider and chunk (its row-value `IN` would scan the table)."""
    found: list[tuple[object, ...]] = []
    columns = ", ".join(f"f.{name.strip()}" for name in _FACT_COLUMNS.split(","))
    for query, params in _facts_queries(sorted(keys), dialect, columns):
        found += yield Fetch(query, params)
    return found


def _facts_from_row(row: Sequence[object]) -> MessageFacts:
    return MessageFacts(
        provider=str(row[0]),
        message_id=str(row[1]),
        source=str(row[2]),
        sender=str(row[3]),
        channel=str(row[4]),
        country=str(row[5]),
        operator=str(row[6]),
        submitted_us=int(str(row[7])),
        by_send=bool(row[8]),
        final_status=None if row[9] is None else str(row[9]),
        final_us=int(str(row[10])),
        reason=str(row[11]),
        error_code=str(row[12]),
    )


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
    yield from _rollup_lock(dialect)
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
        yield from move_cursor(after_seq)
    return RebuildReport(from_us, events, messages)


def catch_up(place: Place, dialect: Dialect) -> Transaction[int]:
    """Roll up the next events after the cursor, at most `PAGE`, in this transaction;
    returns how many. The store's writer reads and folds outside its transaction
    instead (`read_page`, `fold_page`, `apply_page`)."""
    yield from _rollup_lock(dialect)
    read = yield from read_page(PAGE, dialect)
    yield from _write_page(fold_page(read, place), dialect)
    return len(read.events)


def _rollup_lock(dialect: Dialect) -> Transaction[None]:
    """PostgreSQL's advisory lock for rolling up, to the transaction's end (SQLite has one
    writer at a time)."""
    if dialect.name == "postgres":
        yield Execute(f"SELECT pg_advisory_xact_lock({ROLLUP_LOCK})")


def _cursor() -> Transaction[int]:
    rows = yield Fetch("SELECT value FROM meta WHERE key = ?", (CURSOR,))
    return int(rows[0][0]) if rows else 0


def move_cursor(after_seq: int) -> Transaction[None]:
    """Set the rollups' cursor: events up to `after_seq` count as rolled up."""
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
