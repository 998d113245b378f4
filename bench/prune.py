"""Retention benchmark: prune a large store while callbacks keep being stored.

    python bench/prune.py [--events 1000000] [--old 0.5] [--dsn postgresql://...]

Fills a fresh store (SQLite in a temporary directory, or PostgreSQL in a fresh
schema with `--dsn`) with `--events` events, one raw callback each, a fraction
`--old` of them received 100 days ago and the rest today. Rows go in directly
(executemany through the Database layer on SQLite, COPY on PostgreSQL), not
through HTTP. Then, with `[retention] events = "90d"` and `raw_callbacks = "90d"`:

1. `--writers` tasks store callbacks through the store's writer (the receiver's
   path) for `--baseline` seconds: each write's latency, without pruning;
2. the same writers go on while one prune pass deletes the old events and
   their raw callbacks: rows deleted per second, and each write's latency.

Prints one table: prune rows/s, and write latency p50/p99 without and during
the prune. Figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dlrhub.event import Event, EventType, RawCallback, Status, format_time
from dlrhub.store import Accept, SQLiteStore, SQLStore
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.retention import Pruner, RetentionConfig
from dlrhub.store.rollups import move_cursor
from dlrhub.store.sql_statements import ExecuteMany, Transaction

FILL_BATCH = 50_000
DOC = (
    b'{"id":"ev-%d","source":"nrs360","provider":"nrs360","type":"message.status",'
    b'"received_at":"%s","channel":"sms","message_id":"m-%d","status":"delivered",'
    b'"provider_status":"delivered","occurred_at":"%s","extra":{"campaignId":"9911"}}'
)
BODY = b"id=m-%d&channel=sms&contactId=48213&campaignId=9911&event=delivered"
RAW_COLUMNS = (
    "id, dedupe_key, source, provider, kind, method, query, content_type, body,"
    " remote_addr, received_at"
)
EVENT_COLUMNS = (
    "seq, id, raw_id, source, provider, type, status, message_id, doc, received_at, occurred_at"
)


def rows(start: int, stop: int, old_until: int) -> tuple[list[tuple[Any, ...]], list[Any]]:
    today = datetime.now(UTC)
    old = today - timedelta(days=100)
    raws, events = [], []
    for number in range(start, stop):
        moment = old if number <= old_until else today
        # Spread over seconds so the time index is not one value.
        at = format_time(moment + timedelta(milliseconds=number))
        raws.append(
            (number, f"key-{number}", "nrs360", "nrs360", "events", "POST", "",
             "application/x-www-form-urlencoded", BODY % number, "127.0.0.1", at)
        )  # fmt: skip
        events.append(
            (number, f"ev-{number}", number, "nrs360", "nrs360", "message.status", "delivered",
             f"m-{number}", DOC % (number, at.encode(), number, at.encode()), at, at)
        )  # fmt: skip
    return raws, events


def insert(raws: Sequence[Any], events: Sequence[Any]) -> Transaction[None]:
    yield ExecuteMany(
        f"INSERT INTO raw_callbacks ({RAW_COLUMNS}) VALUES ({','.join('?' * 11)})",  # noqa: S608
        raws,
    )
    yield ExecuteMany(
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({','.join('?' * 11)})",  # noqa: S608
        events,
    )


async def fill(database: Database, dsn: str | None, schema: str, count: int, old: int) -> float:
    started = time.perf_counter()
    connection = None
    if dsn is not None:
        connection = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        for start in range(1, count + 1, FILL_BATCH):
            raws, events = rows(start, min(start + FILL_BATCH, count + 1), old)
            if connection is None:
                await database.transact(insert(raws, events))
            else:
                await connection.copy_records_to_table(
                    "raw_callbacks", records=raws, columns=RAW_COLUMNS.split(", ")
                )
                await connection.copy_records_to_table(
                    "events", records=events, columns=EVENT_COLUMNS.split(", ")
                )
            print(f"  filled {min(start + FILL_BATCH - 1, count):,} events", flush=True)
        # Written past the store's writer, so not rolled up: say they are, as the writer
        # would have done by now, or the first prune pass would roll them all up first.
        await database.transact(move_cursor(count))
        if connection is not None:
            await connection.execute("ANALYZE")
    finally:
        if connection is not None:
            await connection.close()
    return time.perf_counter() - started


def callback(run: str, number: int) -> Accept:
    now = datetime.now(UTC)
    raw = RawCallback(
        source="nrs360",
        provider="nrs360",
        kind="events",
        method="POST",
        query="",
        content_type="application/x-www-form-urlencoded",
        body=b"bench-%s-%d" % (run.encode(), number),
        received_at=now,
    )
    event = Event(
        id=f"ev-{run}-{number}",
        source="nrs360",
        provider="nrs360",
        type=EventType.MESSAGE_STATUS,
        received_at=now,
        message_id=f"msg-{run}-{number}",
        status=Status.DELIVERED,
    )
    return Accept(raw, [event])


async def write_for(store: SQLStore, writers: int, until: asyncio.Event) -> list[float]:
    """Writers storing callbacks one after the other until `until` is set; their latencies."""
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    counter = iter(range(10**9))

    async def writer() -> None:
        while not until.is_set():
            item = callback(run, next(counter))
            started = time.perf_counter()
            await store.write(item)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)  # a steady trickle, not a flood

    await asyncio.gather(*(writer() for _ in range(writers)))
    return latencies


def percentiles(latencies: list[float]) -> str:
    if len(latencies) < 2:
        return "-"
    cuts = statistics.quantiles(latencies, n=100)
    return f"{cuts[49] * 1000:.1f} / {cuts[98] * 1000:.1f} ms ({len(latencies):,} writes)"


async def measure(args: argparse.Namespace, directory: Path) -> str:
    schema = f"bench_prune_{uuid.uuid4().hex[:8]}"
    store: SQLStore
    database: Database
    if args.dsn:
        store = PostgresStore(args.dsn, schema=schema, migrate="auto")
        database = PostgresDatabase(args.dsn, schema)
        name = "PostgreSQL"
    else:
        path = directory / "dlrhub.sqlite3"
        store, database = SQLiteStore(path), SQLiteDatabase(path, synchronous="NORMAL")
        name = "SQLite"
    await store.open()
    await database.open()
    old = int(args.events * args.old)
    try:
        print(f"{name}: filling {args.events:,} events ({old:,} old)", flush=True)
        fill_seconds = await fill(database, args.dsn, schema, args.events, old)
        stop = asyncio.Event()
        baseline = asyncio.create_task(write_for(store, args.writers, stop))
        await asyncio.sleep(args.baseline)
        stop.set()
        quiet = await baseline

        retention = RetentionConfig(events=90 * 86400.0, raw_callbacks=90 * 86400.0)
        retention = replace(retention, batch=args.batch)
        pruner = Pruner(database, retention)
        stop = asyncio.Event()
        during = asyncio.create_task(write_for(store, args.writers, stop))
        started = time.perf_counter()
        last = started

        def progress(kind: str, deleted: int) -> None:
            nonlocal last
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                print(f"  {kind}: {deleted:,} deleted", flush=True)

        report = await pruner.run_pass(progress=progress)  # type: ignore[arg-type]
        prune_seconds = time.perf_counter() - started
        stop.set()
        busy = await during
    finally:
        await database.close()
        await store.close()
        if args.dsn:
            connection = await asyncpg.connect(args.dsn)
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.close()
    deleted = report.deleted
    by_kind = ", ".join(f"{kind.kind} {kind.deleted:,}" for kind in report.kinds if kind.deleted)
    return (
        f"{name}: {args.events:,} events filled in {fill_seconds:.0f} s\n"
        f"  prune: {deleted:,} rows ({by_kind}) in {prune_seconds:.1f} s"
        f" = {deleted / prune_seconds:,.0f} rows/s (batch {args.batch}, sleeping as long"
        " as each batch took)\n"
        f"  store writes p50 / p99, {args.writers} writers: without prune {percentiles(quiet)};"
        f" during prune {percentiles(busy)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--old", type=float, default=0.5, help="fraction received 100 days ago")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds without pruning")
    parser.add_argument("--dsn", help="PostgreSQL (a fresh schema is made and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-prune-") as directory:
        print(asyncio.run(measure(args, Path(directory))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
