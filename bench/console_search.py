"""Operator console benchmark: each message search shape on a large store.

    python bench/console_search.py [--events 1000000] [--messages 300000] [--runs 50]
    python bench/console_search.py --postgres [--dsn postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh store (SQLite in a temporary directory, or PostgreSQL in a fresh
schema, dropped afterwards) with `--events` events over `--messages` messages
(raw callbacks, events and the messages' rows), then times
`SQLStore.search_messages` for each search shape, `--runs` times with fresh
values each run, and prints p50/p95 per shape. Rows go in directly, in the
store's row shape (executemany in 50,000-row transactions on SQLite, `COPY` on
PostgreSQL, then ANALYZE): through the group-commit writer a million events
take several minutes, and what is measured here is reading. `--max-seconds`
bounds the timing of each shape. Figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dlrhub.event import Status, format_time
from dlrhub.store import SQLiteStore, SQLStore
from dlrhub.store.base import MessageSearch
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.message_search import reversed_digits
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.sql_statements import Execute, ExecuteMany, Transaction

FILL_BATCH = 50_000
START = datetime(2026, 11, 1, tzinfo=UTC)
SPACING = timedelta(milliseconds=250)  # 1,000,000 events over about 3 days
PROVIDERS = ("nrs360", "uvox", "onurix")
SOURCES = ("nrs360", "uvox", "onurix-main", "acme")  # "acme": 2 % of the messages
STATUSES = (("delivered", 7), ("sent", 2), ("failed", 1))
DOC = (
    b'{"id":"ev-%d","source":"nrs360","provider":"nrs360","type":"message.status",'
    b'"received_at":"%s","channel":"sms","message_id":"m-%d","status":"delivered"}'
)
RAW_COLUMNS = (
    "id, dedupe_key, source, provider, kind, method, query, content_type, body,"
    " remote_addr, received_at"
)
EVENT_COLUMNS = (
    "seq, id, raw_id, source, provider, type, status, message_id, doc, received_at,"
    " recipient, correlation_id"
)
MESSAGE_COLUMNS = (
    "provider, message_id, source, status, provider_status, rank, ordering_us, last_seq,"
    " recipient, correlation_id, recipient_rev"
)


class Fake:
    """What message `number` is: one deterministic set of values per message."""

    def __init__(self, messages: int) -> None:
        self.messages = messages
        chooser = random.Random(15)
        weighted = [status for status, weight in STATUSES for _ in range(weight)]
        self.recipient = [f"+57300{chooser.randrange(10**7):07d}" for _ in range(messages)]
        self.status = [chooser.choice(weighted) for _ in range(messages)]
        self.source = [
            "acme" if chooser.random() < 0.02 else chooser.choice(SOURCES[:3])
            for _ in range(messages)
        ]

    def provider(self, number: int) -> str:
        return PROVIDERS[number % len(PROVIDERS)]

    def ref(self, number: int) -> str | None:
        return f"ref-{number}" if number % 2 else None


def rows(fake: Fake, start: int, stop: int, events: int) -> dict[str, list[tuple[Any, ...]]]:
    """Raw callbacks, events and (for messages whose last event is here) message rows."""
    made: dict[str, list[tuple[Any, ...]]] = {"raw_callbacks": [], "events": [], "messages": []}
    for seq in range(start, stop):
        number = seq % fake.messages
        at = format_time(START + SPACING * seq)
        source, provider = fake.source[number], fake.provider(number)
        made["raw_callbacks"].append(
            (seq, f"key-{seq}", source, provider, "events", "POST", "",
             "application/x-www-form-urlencoded", b"id=m-%d" % number, None, at)
        )  # fmt: skip
        made["events"].append(
            (seq, f"ev-{seq}", seq, source, provider, "message.status", fake.status[number],
             f"m-{number}", DOC % (seq, at.encode(), number), at, fake.recipient[number],
             fake.ref(number))
        )  # fmt: skip
        if seq + fake.messages > events:  # no later event of this message
            recipient = fake.recipient[number]
            made["messages"].append(
                (provider, f"m-{number}", source, fake.status[number], None, 1, 0, seq,
                 recipient, fake.ref(number), reversed_digits(recipient))
            )  # fmt: skip
    return made


def insert(made: dict[str, list[tuple[Any, ...]]]) -> Transaction[None]:
    for table, columns in (
        ("raw_callbacks", RAW_COLUMNS),
        ("events", EVENT_COLUMNS),
        ("messages", MESSAGE_COLUMNS),
    ):
        if made[table]:
            marks = ",".join("?" * len(columns.split(", ")))
            yield ExecuteMany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", made[table])  # noqa: S608


def analyze() -> Transaction[None]:
    yield Execute("ANALYZE")


async def fill(database: Database, dsn: str | None, schema: str, fake: Fake, events: int) -> float:
    started = time.perf_counter()
    connection = None
    if dsn is not None:
        connection = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        for start in range(1, events + 1, FILL_BATCH):
            made = rows(fake, start, min(start + FILL_BATCH, events + 1), events)
            if connection is None:
                await database.transact(insert(made))
            else:
                for table, columns in (
                    ("raw_callbacks", RAW_COLUMNS),
                    ("events", EVENT_COLUMNS),
                    ("messages", MESSAGE_COLUMNS),
                ):
                    await connection.copy_records_to_table(
                        table, records=made[table], columns=columns.split(", ")
                    )
            print(f"  filled {min(start + FILL_BATCH - 1, events):,} events", flush=True)
        if connection is not None:
            await connection.execute("ANALYZE")
        else:
            await database.transact(analyze())
    finally:
        if connection is not None:
            await connection.close()
    return time.perf_counter() - started


def shapes(fake: Fake, events: int) -> dict[str, Callable[[random.Random], MessageSearch]]:
    """Each search shape, as a query with fresh values per run."""

    def number(chooser: random.Random) -> int:
        return chooser.randrange(fake.messages)

    # Every message's last event is among the last `messages` events: cursors and
    # times are drawn there, where messages are.
    first = events - fake.messages + 1

    def cursor(chooser: random.Random) -> int:
        return chooser.randrange(first, events + 1)

    def moment(chooser: random.Random) -> datetime:
        return START + SPACING * chooser.randrange(first, events)

    return {
        "newest (no filter)": lambda c: MessageSearch(),
        "cursor (before_seq)": lambda c: MessageSearch(before_seq=cursor(c)),
        "message_id": lambda c: MessageSearch(message_id=f"m-{number(c)}"),
        "correlation_id": lambda c: MessageSearch(correlation_id=f"ref-{number(c) | 1}"),
        "recipient, 4 digits": lambda c: MessageSearch(recipient=fake.recipient[number(c)][-4:]),
        "recipient, 7 digits": lambda c: MessageSearch(recipient=fake.recipient[number(c)][-7:]),
        "recipient, full +": lambda c: MessageSearch(recipient=fake.recipient[number(c)]),
        "status failed": lambda c: MessageSearch(status="failed"),
        "status failed, cursor": lambda c: MessageSearch(status="failed", before_seq=cursor(c)),
        "provider": lambda c: MessageSearch(provider=c.choice(PROVIDERS)),
        "source (2 %)": lambda c: MessageSearch(source="acme"),
        "source with none (worst)": lambda c: MessageSearch(source="nobody"),
        "since/until, 1 hour": lambda c: (
            lambda at: MessageSearch(since=at, until=at + timedelta(hours=1))
        )(moment(c)),
        "since/until + status": lambda c: (
            lambda at: MessageSearch(status="failed", since=at, until=at + timedelta(hours=1))
        )(moment(c)),
        "recipient 4 + status": lambda c: MessageSearch(
            recipient=fake.recipient[number(c)][-4:], status=Status.DELIVERED.value
        ),
    }


async def time_shapes(
    store: SQLStore, fake: Fake, events: int, runs: int, max_seconds: float
) -> list[str]:
    lines = ["| shape | p50 ms | p95 ms | rows (last run) | runs |", "|---|---|---|---|---|"]
    chooser = random.Random(7)
    for name, make in shapes(fake, events).items():
        latencies: list[float] = []
        found = 0
        deadline = time.perf_counter() + max_seconds
        await store.search_messages(make(chooser))  # warm the pages this shape reads
        while len(latencies) < runs and time.perf_counter() < deadline:
            query = make(chooser)
            started = time.perf_counter()
            found = len(await store.search_messages(query))
            latencies.append(time.perf_counter() - started)
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        lines.append(
            f"| {name} | {cuts[49] * 1000:.2f} | {cuts[94] * 1000:.2f} | {found} |"
            f" {len(latencies)} |"
        )
        print(lines[-1], flush=True)
    return lines


async def measure(args: argparse.Namespace, directory: Path) -> str:
    schema = f"bench_console_{uuid.uuid4().hex[:8]}"
    store: SQLStore
    database: Database
    if args.postgres:
        store = PostgresStore(args.dsn, schema=schema, migrate="auto")
        database = PostgresDatabase(args.dsn, schema)
        name = "PostgreSQL"
    else:
        path = directory / "dlrhub.sqlite3"
        store, database = SQLiteStore(path), SQLiteDatabase(path, synchronous="NORMAL")
        name = "SQLite"
    fake = Fake(args.messages)
    await store.open()
    await database.open()
    try:
        print(f"{name}: filling {args.events:,} events over {args.messages:,} messages")
        seconds = await fill(
            database, args.dsn if args.postgres else None, schema, fake, args.events
        )
        print(f"  fill took {seconds:.1f} s", flush=True)
        lines = await time_shapes(store, fake, args.events, args.runs, args.max_seconds)
    finally:
        await database.close()
        await store.close()
        if args.postgres:
            connection = await asyncpg.connect(args.dsn)
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.close()
    header = f"{name}, {args.events:,} events, {args.messages:,} messages, fill {seconds:.0f} s"
    return "\n".join([header, *lines])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per shape")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    if args.messages > args.events:
        parser.error("--messages must not exceed --events")
    with tempfile.TemporaryDirectory() as directory:
        print(asyncio.run(measure(args, Path(directory))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
