"""Delivery analytics benchmark: what the rollups cost ingest, and what a query costs.

    python bench/analytics.py [--dsn postgresql://...] [--messages 1000000] [--skip-ingest]

1. Ingest, rollups on and off: `--writers` concurrent tasks store `--callbacks`
   status callbacks (each message `accepted`, then a receipt 40 callbacks later,
   recipients in Colombia, Spain and Mexico) through the store's group-commit
   writer, the receiver's path, into a fresh store; once as dlrhub runs (the
   writer rolls up a page after answering, when idle or a page has piled up)
   and once with the writer's folding turned off (this script
   only), alternating for `--rounds` rounds. Prints events/s both ways and the
   ratio (the goal: ingest loses at most 10 %), and, rollups on, how long the
   rollups took to catch up once the writes were done (the events/s until then).
2. Queries: a fresh store's rollups are filled for `--messages` messages over
   30 days x 4 providers x 3 countries x 5 operators (x `--senders` senders):
   per message a `MessageFacts` is made and added up by the rollups' own
   `_Deltas`, one transaction per day, without storing events (that would be
   2 events per message through the write path). Then `store.delivery_sums` +
   `figures` per group, as `GET /v1/analytics/delivery` answers, `--repeat`
   times: 30 days grouped by provider,operator, and the last 24 h grouped by
   provider with `bucket=hour`. Prints p50/p95 (the goal: under 100 ms).

SQLite in a temporary directory, always; PostgreSQL too with `--dsn`, in a fresh
schema dropped afterwards. Runs under uvloop, as `dlrhub serve` does. Figures in
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import uvloop

from dlrhub.analytics.facts import DAY_US, HOUR_US, MessageFacts
from dlrhub.analytics.figures import DeliveryQuery, figures
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.store import Accept, SQLiteStore, SQLStore, WriteResult
from dlrhub.store.dialect import Dialect
from dlrhub.store.postgres import PostgresStore
from dlrhub.store.rollups import _Deltas
from dlrhub.store.sql_statements import Transaction

PROVIDERS = ("nrs360", "onurix", "uvox", "conectaline")
OPERATORS = {
    "CO": ("Claro", "Movistar", "Tigo", "WOM", "ETB"),
    "ES": ("Movistar", "Vodafone", "Orange", "Yoigo", "Digi"),
    "MX": ("Telcel", "AT&T", "Movistar", "Bait", "Altan"),
}
# Numbers whose prefixes libphonenumber places (the cache is per prefix: a few thousand here).
NUMBER_PREFIXES = ("+57300", "+57315", "+57320", "+3461", "+3469", "+5255", "+5233")
FINALS = (  # final status, provider status, error code, share
    (Status.DELIVERED, "DELIVRD", "", 0.88),
    (Status.FAILED, "UNDELIV", "34", 0.04),
    (Status.UNDELIVERED, "UNDELIV", "1", 0.03),
    (Status.EXPIRED, "EXPIRED", "", 0.02),
    (Status.REJECTED, "REJECTD", "62", 0.01),
    (None, "", "", 0.02),  # no receipt yet
)
RECEIPT_LAG = 40  # callbacks between a message's `accepted` and its receipt


# 1. Ingest ---------------------------------------------------------------------------


def callbacks(count: int, seed: int = 1) -> list[Accept]:
    """`count` callbacks of one event: each message's `accepted`, then its receipt."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    accepted: list[Event] = []
    made: list[Accept] = []
    number = 0
    while len(made) < count:
        if len(accepted) > RECEIPT_LAG or number * 2 >= count:
            sent = accepted.pop(0)
            status = rng.choices([f[0] for f in FINALS[:-1]], [f[3] for f in FINALS[:-1]])[0]
            assert status is not None
            made.append(accept(receipt(sent, status, rng.lognormvariate(9, 1.5))))
            continue
        event = Event(
            id=f"a{number}",
            source="nrs360",
            provider=PROVIDERS[number % 4],
            type=EventType.MESSAGE_STATUS,
            received_at=now,
            channel="sms",
            message_id=f"m{number}",
            recipient=f"{rng.choice(NUMBER_PREFIXES)}{rng.randrange(10**7):07d}",
            sender=rng.choice(("ACME", "Banco", "Tienda")),
            status=Status.ACCEPTED,
            provider_status="accepted",
            occurred_at=now,
        )
        accepted.append(event)
        made.append(accept(event))
        number += 1
    return made


def receipt(sent: Event, status: Status, milliseconds: float) -> Event:
    assert sent.occurred_at is not None
    return Event(
        id=f"r{sent.id}",
        source=sent.source,
        provider=sent.provider,
        type=EventType.MESSAGE_STATUS,
        received_at=sent.received_at,
        message_id=sent.message_id,
        recipient=sent.recipient,
        status=status,
        provider_status=status.value,
        occurred_at=sent.occurred_at + timedelta(milliseconds=milliseconds),
    )


def accept(event: Event) -> Accept:
    raw = RawCallback(
        source="nrs360",
        provider="nrs360",
        kind="events",
        method="POST",
        query="",
        content_type="application/json",
        body=event.id.encode(),
        received_at=event.received_at,
        remote_addr="127.0.0.1",
    )
    return Accept(raw, [event])


def answer_reads(store: SQLStore) -> None:
    """`SQLStore._fold_if_due` without folding: reads are answered at once."""
    for future in store._asked:
        future.set_result(WriteResult("rolled_up"))
    store._asked = []


@contextlib.contextmanager
def rollups_off() -> Iterator[None]:
    """The store's writer as before the rollups: it never reads nor folds a page."""
    due, idle = SQLStore._fold_if_due, SQLStore._idle_work
    SQLStore._fold_if_due = answer_reads  # type: ignore[method-assign,assignment]
    SQLStore._idle_work = lambda store: False  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        SQLStore._fold_if_due, SQLStore._idle_work = due, idle  # type: ignore[method-assign,assignment]


async def ingest(
    store: SQLStore, items: list[Accept], writers: int, *, then_roll_up: bool = False
) -> tuple[float, float, float]:
    """Events stored per second by `writers` tasks writing one callback after another,
    the CPU time (all threads) per event in microseconds, and the seconds the rollups
    took to catch up once the writes were done (with `then_roll_up`: the CPU per event
    of rolling them all up afterwards, `rebuild_rollups`, pages of 5,000)."""
    await store.open()
    try:
        queue = iter(items)

        async def writer() -> None:
            for item in queue:
                await store.write(item)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(writer() for _ in range(writers)))
        rate = len(items) / (time.perf_counter() - started)
        cpu = (time.process_time() - cpu) / len(items) * 1e6
        if then_roll_up:
            afterwards = time.process_time()
            await store.rebuild_rollups()
            return rate, cpu, (time.process_time() - afterwards) / len(items) * 1e6
        lagging = time.perf_counter()
        await store.catch_up_rollups()
        return rate, cpu, time.perf_counter() - lagging
    finally:
        await store.close()


async def measure_ingest(backend: str, dsn: str | None, args: argparse.Namespace) -> str:
    items = callbacks(args.callbacks)
    place = NumberPlaces("CO").place_for({})
    rates: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    batched: list[float] = []
    lags: list[float] = []
    for _ in range(args.rounds):
        for on in (False, True):
            async with fresh_store(backend, dsn, place) as store:
                with contextlib.nullcontext() if on else rollups_off():
                    rate, cpu, afterwards = await ingest(
                        store, items, args.writers, then_roll_up=not on
                    )
            rates[on].append(rate)
            cpus[on].append(cpu)
            (lags if on else batched).append(afterwards)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    cpu_on, cpu_off = statistics.median(cpus[True]), statistics.median(cpus[False])
    return (
        f"{backend}: ingest of {len(items):,} callbacks by {args.writers} writers,"
        f" median of {args.rounds} rounds\n"
        f"  rollups off {off:,.0f} events/s, on {on:,.0f} events/s: {on / off:.1%} of the"
        f" throughput ({1 - on / off:+.1%} lost)"
        f"\n  rollups on: caught up {statistics.median(lags):.2f} s after the last write"
        f" ({len(items) / (len(items) / on + statistics.median(lags)):,.0f} events/s until then)"
        f"\n  CPU of this process per event: off {cpu_off:.0f} µs, on {cpu_on:.0f} µs;"
        f" rolling up afterwards in pages of 5,000 (rebuild): {statistics.median(batched):.0f} µs"
        f"\n  rounds off: {', '.join(f'{r:,.0f}' for r in rates[False])};"
        f" on: {', '.join(f'{r:,.0f}' for r in rates[True])}"
    )


# 2. Queries --------------------------------------------------------------------------


def facts_by_day(
    messages: int, end_us: int, senders: int, seed: int = 2
) -> Iterator[list[MessageFacts]]:
    """`messages` messages' facts over the 30 days before `end_us`, a list per day."""
    rng = random.Random(seed)
    start = end_us - 30 * DAY_US
    per_day = math.ceil(messages / 30)
    weights = [f[3] for f in FINALS]
    made = 0
    for day in range(30):
        batch = []
        for _ in range(min(per_day, messages - made)):
            country = rng.choice(tuple(OPERATORS))
            provider = rng.choice(PROVIDERS)
            submitted = start + day * DAY_US + rng.randrange(DAY_US)
            status, word, code, _ = rng.choices(FINALS, weights)[0]
            latency_us = int(rng.lognormvariate(9, 1.5) * 1000)  # median 8 s
            batch.append(
                MessageFacts(
                    provider=provider,
                    message_id="",
                    source=provider,
                    sender=f"sender{rng.randrange(senders)}",
                    channel="sms",
                    country=country,
                    operator=rng.choice(OPERATORS[country]),
                    submitted_us=submitted,
                    by_send=True,
                    final_status=None if status is None else status.value,
                    final_us=submitted + latency_us if status else 0,
                    reason=word if status not in (None, Status.DELIVERED) else "",
                    error_code=code,
                )
            )
        made += len(batch)
        yield batch


def add_up(batch: list[MessageFacts], dialect: Dialect) -> Transaction[None]:
    deltas = _Deltas.empty()
    for facts in batch:
        deltas.add(facts, +1)
    yield from deltas.folded([]).statements(dialect)


async def timed(store: SQLStore, query: DeliveryQuery, repeat: int) -> tuple[str, int]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = {key: figures(sums) for key, sums in (await store.delivery_sums(query)).items()}
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    return f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms", len(answer)


async def measure_queries(backend: str, dsn: str | None, args: argparse.Namespace) -> str:
    now_us = int(time.time() * 1_000_000)
    end = now_us // HOUR_US * HOUR_US + HOUR_US
    async with fresh_store(backend, dsn, NumberPlaces().place_for({})) as store:
        await store.open()
        try:
            started = time.perf_counter()
            for batch in facts_by_day(args.messages, end, args.senders):
                await store.backend.transact(add_up(batch, store.backend.dialect))
            fill = time.perf_counter() - started
            rows = await store.backend.read(
                "SELECT (SELECT count(*) FROM delivery_rollups),"
                " (SELECT count(*) FROM delivery_histograms),"
                " (SELECT count(*) FROM delivery_reasons)",
                [],
            )
            month = DeliveryQuery(now_us - 30 * DAY_US, now_us, group_by=("provider", "operator"))
            day = DeliveryQuery(now_us - DAY_US, now_us, group_by=("provider",), bucket="hour")
            month_figures, month_groups = await timed(store, month, args.repeat)
            day_figures, day_groups = await timed(store, day, args.repeat)
        finally:
            await store.close()
    rollups, latency, reasons = (int(value) for value in rows[0])
    return (
        f"{backend}: {args.messages:,} messages ({args.senders} senders) filled in {fill:.1f} s"
        f" (MessageFacts added up by rollups._Deltas, no events):"
        f" {rollups:,} rollup rows, {latency:,} histogram rows (one per hour or day cell),"
        f" {reasons:,} reason rows\n"
        f"  30 days by provider,operator ({month_groups} groups, {args.repeat} queries):"
        f" {month_figures}\n"
        f"  24 h by provider, bucket=hour ({day_groups} groups, {args.repeat} queries):"
        f" {day_figures}"
    )


@contextlib.asynccontextmanager
async def fresh_store(backend: str, dsn: str | None, place: object) -> AsyncIterator[SQLStore]:
    """A new, unopened store over empty data; its files or schema removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dlrhub-analytics-bench-") as directory:
            yield SQLiteStore(Path(directory) / "dlrhub.sqlite3", place=place)  # type: ignore[arg-type]
        return
    assert dsn is not None
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        yield PostgresStore(dsn, schema=schema, place=place)  # type: ignore[arg-type]
    finally:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await connection.close()


async def run(args: argparse.Namespace) -> None:
    backends = [("sqlite", None)] + ([("postgres", args.dsn)] if args.dsn else [])
    for backend, dsn in backends:
        if not args.skip_ingest:
            print(await measure_ingest(backend, dsn, args), flush=True)
        if not args.skip_queries:
            print(await measure_queries(backend, dsn, args), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", help="a PostgreSQL URL: measure that backend too")
    parser.add_argument("--writers", type=int, default=64, help="concurrent writing tasks")
    parser.add_argument("--callbacks", type=int, default=20_000, help="callbacks per ingest run")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs each way")
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in the rollups")
    parser.add_argument("--senders", type=int, default=1, help="senders per provider (x cells)")
    parser.add_argument("--repeat", type=int, default=30, help="times each query runs")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    args = parser.parse_args(argv)
    if not (
        1 <= args.writers <= 1024
        and 100 <= args.callbacks <= 1_000_000
        and 1 <= args.rounds <= 20
        and 1_000 <= args.messages <= 10_000_000
        and 1 <= args.repeat <= 1_000
        and 1 <= args.senders <= 100
    ):
        parser.error(
            "--writers 1-1024, --callbacks 100-1000000, --rounds 1-20,"
            " --messages 1000-10000000, --repeat 1-1000, --senders 1-100"
        )
    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
