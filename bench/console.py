"""Operator console benchmark: page and API latencies on a store of 1,000,000 events.

    python bench/console.py [--events 1000000] [--messages 300000] [--runs 30]
    python bench/console.py --postgres [--dsn postgresql://postgres@127.0.0.1:5432/test]

Fills a fresh store the way bench/console_search.py does (rows in the store's
shape, then ANALYZE), starts `dlrhub serve`'s app on 127.0.0.1 with Uvicorn in this
process, signs in to the console, and times each search and page over HTTP:
`--runs` requests each (fresh values per run), p50 and p95, beside `GET /healthz`
in the same run (the bare cost of a request through dlrhub and Uvicorn). The goal:
searches answer within 200 ms on this store. Bounded: `--max-seconds` per line.
Figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import uvicorn
from console_search import PROVIDERS, Fake, fill  # bench/ is the script's folder

from dlrhub.app import create_app
from dlrhub.config import parse_config
from dlrhub.store import SQLiteStore, SQLStore
from dlrhub.store.database import Database, PostgresDatabase, SQLiteDatabase
from dlrhub.store.postgres import PostgresStore

ADMIN_TOKEN = "bench-console-admin-token-7f3k"


def requests(fake: Fake, events: int) -> dict[str, Callable[[random.Random], str]]:
    """Each measured request, as a path with fresh values per run."""

    def number(chooser: random.Random) -> int:
        return chooser.randrange(fake.messages)

    def message(chooser: random.Random) -> str:
        n = number(chooser)
        return f"{fake.provider(n)}/m-{n}"

    return {
        "GET /healthz (baseline)": lambda c: "/healthz",
        "API newest messages": lambda c: "/v1/messages",
        "API message by id": lambda c: f"/v1/messages?message_id=m-{number(c)}",
        "API by your ref": lambda c: f"/v1/messages?correlation_id=ref-{number(c) | 1}",
        "API recipient, 4 digits": lambda c: (
            f"/v1/messages?recipient={fake.recipient[number(c)][-4:]}"
        ),
        "API status failed + provider": lambda c: (
            f"/v1/messages?status=failed&provider={c.choice(PROVIDERS)}"
        ),
        "API one message's story": lambda c: f"/v1/messages/{message(c)}",
        "API events, newest 50": lambda c: "/v1/events?order=desc&limit=50",
        "API overview": lambda c: "/v1/overview",
        "page Messages, newest": lambda c: "/console/messages",
        "page Messages, recipient 4 digits": lambda c: (
            f"/console/messages?recipient={fake.recipient[number(c)][-4:]}"
        ),
        "page Messages, your ref": lambda c: (
            f"/console/messages?correlation_id=ref-{number(c) | 1}"
        ),
        "page one message": lambda c: f"/console/messages/{message(c)}",
        "page Events": lambda c: "/console/events",
        "page Overview": lambda c: "/console",
    }


async def time_requests(
    client: httpx.AsyncClient, fake: Fake, events: int, runs: int, max_seconds: float
) -> list[str]:
    lines = ["| request | p50 ms | p95 ms | x baseline p50 | runs |", "|---|---|---|---|---|"]
    chooser = random.Random(11)
    baseline = 0.0
    for name, make in requests(fake, events).items():
        latencies: list[float] = []
        deadline = time.perf_counter() + max_seconds
        (await client.get(make(chooser))).raise_for_status()  # warm what it reads
        while len(latencies) < runs and time.perf_counter() < deadline:
            path = make(chooser)
            started = time.perf_counter()
            answer = await client.get(path)
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise SystemExit(f"{path}: HTTP {answer.status_code} {answer.text[:200]}")
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        baseline = baseline or cuts[49]
        lines.append(
            f"| {name} | {cuts[49] * 1000:.1f} | {cuts[94] * 1000:.1f} |"
            f" {cuts[49] / baseline:.1f} | {len(latencies)} |"
        )
        print(lines[-1], flush=True)
    return lines


async def measure(args: argparse.Namespace, directory: Path) -> str:
    schema = f"bench_console_{uuid.uuid4().hex[:8]}"
    store: SQLStore
    database: Database
    document: dict[str, object] = {"data_dir": str(directory), "admin_token": ADMIN_TOKEN}
    if args.postgres:
        store = PostgresStore(args.dsn, schema=schema, migrate="auto")
        database = PostgresDatabase(args.dsn, schema)
        document["store"] = {"backend": "postgres", "dsn": args.dsn, "schema": schema}
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
        await database.close()
        await store.close()
        app = create_app(parse_config(document))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                raise SystemExit("the app did not start")
            await asyncio.sleep(0.05)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                signed = await client.post("/console/login", data={"token": ADMIN_TOKEN})
                assert signed.status_code == 303, signed.text
                lines = await time_requests(client, fake, args.events, args.runs, args.max_seconds)
        finally:
            server.should_exit = True
            await task
            sock.close()
    finally:
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
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=15.0, help="per request kind")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dlrhub-bench-console-") as folder:
        print(asyncio.run(measure(args, Path(folder))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
