"""Benchmark of the status poller: throughput per account, scheduler CPU per poll, memory.

    python bench/poll.py [--messages 50000] [--seconds 20] [--concurrency 32]
                         [--backend sqlite|postgres] [--pollers 2] [--no-canned]

1. `--messages` messages are tracked for one Onurix account (one executemany).
2. Throughput: a fake Onurix answering in `--latency` (20 ms) runs in another
   process (`dlrhub.testing`); the poller polls the due messages for `--seconds`
   with `--concurrency` requests in flight and no rate limit. Reported: messages
   polled per second for the account, and CPU per poll. With `--pollers N`, N
   poller processes share the store (the same SQLite file, or one PostgreSQL
   schema, `--dsn`, made for the run and dropped after) and the account.
3. Scheduler overhead: the same messages, polled through an in-process client
   that only sleeps `--latency` and returns a canned answer, so the process's
   CPU time is the poller's own (claim, normalize, decide, store the event of
   the first answer, write back), divided by the polls made.
4. Memory: peak RSS of this process, and its growth during the runs.

Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from dlrhub.config import Config, parse_config
from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.outbound.transport import Exchange, Transport
from dlrhub.providers.onurix.client import OnurixClient
from dlrhub.store.settings import open_store
from dlrhub.store.tracking_sql import open_tracking

DEFAULT_DSN = os.environ.get(
    "DLRHUB_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)

FAKE = """
import sys, uvicorn
from dlrhub.providers.onurix.fake import FakeOnurix
fake = FakeOnurix(latency=float(sys.argv[2]), answer_unknown=True, progression=("Enviado",))
uvicorn.run(fake.app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1024 / 1024


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) another process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def document_for(
    data: Path, base_url: str, concurrency: int, batch: int, store: dict[str, str]
) -> dict[str, Any]:
    return {
        "data_dir": str(data),
        "store": store,
        "accounts": [
            {
                "name": "onx",
                "provider": "onurix",
                "base_url": base_url,
                "client": "1234",
                "key": "onurix-key-0123456789",
                "rate_limit": 0,
                "concurrency": concurrency,
                "timeout": "10s",
            }
        ],
        "poller": {"first_interval": "1h", "max_interval": "2h", "batch_size": batch},
    }


def poll_in_process(document: dict[str, Any], seconds: float) -> tuple[int, float, float]:
    """`poll_for` in a process of its own (one of `--pollers`)."""
    return asyncio.run(poll_for(parse_config(document), seconds, None))


def poll_with_processes(
    document: dict[str, Any], seconds: float, pollers: int
) -> tuple[int, float, float]:
    """Polls, wall seconds and CPU seconds of `pollers` processes sharing the store."""
    if pollers == 1:
        return poll_in_process(document, seconds)
    with multiprocessing.get_context("spawn").Pool(pollers) as pool:
        results = pool.starmap(poll_in_process, [(document, seconds)] * pollers)
    polled = sum(result[0] for result in results)
    return polled, max(result[1] for result in results), sum(result[2] for result in results)


async def drop_schema(dsn: str, schema: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


class CannedClient(OnurixClient):
    """Answers like Onurix after `latency`, without HTTP: isolates the scheduler's cost."""

    def __init__(self, config: Config, latency: float) -> None:
        account = config.outbound.accounts[0]
        super().__init__(account, Transport(account))
        self.latency = latency

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        await asyncio.sleep(self.latency)
        (message_id,) = message_ids
        body = orjson.dumps({"state": "Enviado", "credits": 1, "id": message_id})
        return Exchange(
            method="GET",
            request=f"client=1234&key=[REDACTED]&id={message_id}&dlrhub_channel={channel}",
            status_code=200,
            content_type="application/json",
            body=body,
            received_at=datetime.now(UTC),
        )


async def track(config: Config, count: int) -> float:
    store = open_store(config.store, config.data_dir)
    tracking = open_tracking(config.store, config.data_dir)
    await store.open()
    await tracking.open()
    started = time.perf_counter()
    outbound = Outbound(config, store, tracking)
    await outbound.track("onx", [TrackRequest(f"msg-{index}") for index in range(count)])
    elapsed = time.perf_counter() - started
    await tracking.close()
    await store.close()
    return elapsed


async def poll_for(
    config: Config, seconds: float, clients: dict[str, Any] | None
) -> tuple[int, float, float]:
    """Polls made, wall seconds and CPU seconds while polling for `seconds` (or until none due)."""
    store = open_store(config.store, config.data_dir)
    await store.open()
    poller = Poller(config, store, clients=clients)
    await poller.open()
    polled = 0
    cpu, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        handled = await poller.run_once()
        if handled == 0:
            break
        polled += handled
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await poller.close()
    await store.close()
    return polled, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL (--backend postgres)")
    parser.add_argument("--pollers", type=int, default=1, help="poller processes")
    parser.add_argument("--no-canned", action="store_true", help="skip the scheduler-only run")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    rss_start = current_rss_mb()
    schemas: list[str] = []

    def store() -> dict[str, str]:
        if args.backend == "sqlite":
            return {}
        schemas.append(f"bench_poll_{uuid.uuid4().hex[:12]}")
        return {"backend": "postgres", "dsn": args.dsn, "schema": schemas[-1]}

    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        fake = subprocess.Popen([sys.executable, "-c", FAKE, str(port), str(args.latency)])
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            http_document = document_for(
                Path(directory) / "http",
                f"http://127.0.0.1:{port}/api/v1",
                args.concurrency,
                args.batch,
                store(),
            )
            tracked = asyncio.run(track(parse_config(http_document), args.messages))
            rows.append((f"track {args.messages} messages (one insert)", f"{tracked:.2f} s"))
            fake_cpu = process_cpu(fake.pid)
            polled, wall, cpu = poll_with_processes(http_document, args.seconds, args.pollers)
            fake_cpu = process_cpu(fake.pid) - fake_cpu
            rows.append(
                (
                    f"HTTP polls in {wall:.1f} s ({args.backend}, {args.pollers} poller(s),"
                    f" fake answers in {args.latency * 1000:.0f} ms,"
                    f" {args.concurrency} in flight each)",
                    f"{polled}",
                )
            )
            rows.append(("messages polled per second, one account", f"{polled / wall:.0f}"))
            rows.append(
                (
                    "CPU ms per HTTP poll (poller processes, httpx included)",
                    f"{cpu / max(polled, 1) * 1000:.2f}",
                )
            )
            rows.append(
                (
                    "CPU ms per request in the fake Onurix (uvicorn)",
                    f"{fake_cpu / max(polled, 1) * 1000:.2f}",
                )
            )
        finally:
            fake.terminate()
            fake.wait(10)

        if not args.no_canned:
            canned_config = parse_config(
                document_for(
                    Path(directory) / "canned",
                    "http://127.0.0.1:9/api/v1",
                    args.concurrency,
                    args.batch,
                    store(),
                )
            )
            asyncio.run(track(canned_config, args.messages))
            client = CannedClient(canned_config, args.latency)
            polled, wall, cpu = asyncio.run(poll_for(canned_config, 3600, {"onx": client}))
            rows.append(
                (
                    f"scheduler-only polls (canned {args.latency * 1000:.0f} ms answers)",
                    f"{polled} in {wall:.1f} s = {polled / wall:.0f}/s",
                )
            )
            rows.append(
                (
                    "scheduler CPU ms per poll (claim, normalize, store event, write back)",
                    f"{cpu / max(polled, 1) * 1000:.3f}",
                )
            )
    for schema in schemas:
        asyncio.run(drop_schema(args.dsn, schema))
    rows.append(
        (
            "RSS at start / now / peak (MB)",
            f"{rss_start:.0f} / {current_rss_mb():.0f} / {rss_mb():.0f}",
        )
    )

    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
