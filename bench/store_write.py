"""Store benchmark: what one durable write costs, without HTTP.

    python bench/store_write.py [--writers 64] [--writes 300] [--dsn postgresql://...]

Opens a fresh store (SQLite in a temporary directory, or PostgreSQL in a fresh
schema with `--dsn`), normalizes realistic 360NRS event notifications up front,
then lets `--writers` concurrent tasks each write `--writes` of them, one after
the other, as the receiver's requests do. Prints writes per second, wall time per
write, CPU per write (all threads) and CPU per write on the event-loop thread: the
part that competes with serving HTTP in `dlrhub serve` (see bench/README.md).
Runs under uvloop, as `dlrhub serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from dlrhub.event import RawCallback
from dlrhub.normalizers import SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.store import Accept, SQLiteStore, SQLStore
from dlrhub.store.postgres import PostgresStore

BODY = (
    "id={id}&channel=sms&contactId=48213&campaignId=9911"
    "&campaignName=Campa%C3%B1a+de+oto%C3%B1o&event=delivered&eventDate=2026-11-20+10%3A15%3A00"
)
WARM_UP_WRITES = 30


def callback(number: int) -> Accept:
    raw = RawCallback(
        source="nrs360",
        provider="nrs360",
        kind="events",
        method="POST",
        query="token=[REDACTED]",
        content_type="application/x-www-form-urlencoded",
        body=BODY.format(id=f"bench-{number}").encode(),
        received_at=datetime.now(UTC),
        remote_addr="127.0.0.1",
    )
    return Accept(raw, PROVIDERS["nrs360"].normalize(raw, SourceOptions()))


async def measure(store: SQLStore, writers: int, writes: int) -> str:
    await store.open()
    try:
        items = iter([callback(n) for n in range(writers * (writes + WARM_UP_WRITES))])

        async def writer(count: int) -> None:
            for _ in range(count):
                await store.write(next(items))

        await asyncio.gather(*(writer(WARM_UP_WRITES) for _ in range(writers)))
        wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        await asyncio.gather(*(writer(writes) for _ in range(writers)))
        total = writers * writes
        wall = (time.perf_counter() - wall) / total * 1e6
        cpu = (time.process_time() - cpu) / total * 1e6
        loop_cpu = (time.thread_time() - loop_cpu) / total * 1e6
    finally:
        await store.close()
    return (
        f"{store.backend.name}: {total:,} writes by {writers} writers\n"
        f"  {1e6 / wall:,.0f} writes/s; per write: {wall:.1f} µs wall, {cpu:.1f} µs CPU"
        f" (all threads), {loop_cpu:.1f} µs CPU on the event-loop thread"
    )


async def run(args: argparse.Namespace) -> str:
    if args.dsn is None:
        with tempfile.TemporaryDirectory(prefix="dlrhub-store-bench-") as directory:
            store = SQLiteStore(Path(directory) / "dlrhub.sqlite3")
            return await measure(store, args.writers, args.writes)
    schema = f"bench_{secrets.token_hex(4)}"
    store = PostgresStore(args.dsn, schema=schema)
    try:
        return await measure(store, args.writers, args.writes)
    finally:
        import asyncpg

        connection = await asyncpg.connect(args.dsn)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writers", type=int, default=64, help="concurrent writing tasks")
    parser.add_argument("--writes", type=int, default=300, help="writes per task")
    parser.add_argument("--dsn", help="a PostgreSQL URL: measure that backend instead")
    args = parser.parse_args(argv)
    if not 1 <= args.writers <= 1024 or not 1 <= args.writes <= 100_000:
        parser.error("--writers must be 1-1024 and --writes 1-100000")
    print(uvloop.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
