"""Fan-out benchmark: backlog drain rate and ingest-to-consumer latency.

    /work/.venv/bin/python bench/fanout.py [--backlog 100000] [--rate 200] [--seconds 10]
    /work/.venv/bin/python bench/fanout.py --throughput-only [--backlog 50000] [--single 500]
    /work/.venv/bin/python bench/fanout.py --backend postgres --workers 1|3 [--backlog 20000]

1. Throughput: a store with `--backlog` events, drained by one sink at a time
   (webhook to a receiver in a child process, batched and one event per
   request; Redis Streams on 127.0.0.1:6379). Events/s = backlog / drain time;
   CPU us/event = this process's CPU time (threads included) / events, which a
   busy machine disturbs less than events/s. `--throughput-only` stops there.
2. Latency: `dlrhub serve` (a child process, sinks embedded) takes 360NRS
   callbacks at a steady `--rate`; the time from each 200 answer to the
   consumer's receipt (webhook receiver / XREAD BLOCK on Redis) gives p50/p99.

With `--backend postgres`: a PostgreSQL store (127.0.0.1:5432, a schema of
its own) with `--backlog` events and 6 webhook sinks (batch 100, 4 in flight)
to one receiver process, drained by `--workers` `dlrhub worker` processes
sharing the sinks through leases. The sinks start paused; once the leases
are spread they are resumed, and events/s = 6 x backlog / time until every
cursor reaches the head.

Prints a table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
from redis.asyncio import Redis

from dlrhub.config import Config, load_config
from dlrhub.sinks.service import SinkService
from dlrhub.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers make the events

from tests.sinks.conftest import SECRET, ingest, make_events  # noqa: E402

TOKEN = "bench-source-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A webhook receiver in its own process (so it does not share the sink's core) --------


def run_receiver(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


@contextlib.contextmanager
def receiver_process() -> object:
    port = free_port()
    process = multiprocessing.Process(target=run_receiver, args=(port,), daemon=True)
    process.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        process.terminate()
        process.join(5)


# 1. Throughput --------------------------------------------------------------------


def config_for(directory: Path, sink: str) -> Config:
    path = directory / "dlrhub.toml"
    path.write_text(f'data_dir = "{directory}"\n{sink}', encoding="utf-8")
    return load_config(path, env={})


async def drain(directory: Path, sink: str, count: int) -> tuple[float, float]:
    """Events/s for one sink to deliver the first `count` events of the store, and the
    CPU microseconds it cost per event."""
    config = config_for(directory, sink)
    service = SinkService(config, poll_interval=0.01)
    started = time.perf_counter()
    cpu_before = cpu_seconds()
    await service.start()
    try:
        runner = service.runners[0]
        while runner.stats.delivered < count:  # noqa: ASYNC110 - polling the stats is the point
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
    finally:
        await service.stop()
    return count / elapsed, cpu / count * 1e6


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def throughput(backlog: int, single: int) -> list[tuple[str, str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        store = SQLiteStore(directory / "dlrhub.sqlite3")
        await store.open()
        started = time.perf_counter()
        for start in range(0, backlog, 10_000):
            await ingest(store, make_events(min(10_000, backlog - start), messages=5000))
        print(f"stored a backlog of {backlog} events in {time.perf_counter() - started:.1f}s")
        await store.close()
        with receiver_process() as url:
            for name, batch, lanes, count in (
                ("webhook-batched", 100, 4, backlog),
                ("webhook-single", 1, 8, single),
            ):
                sink = (
                    f'[[sinks]]\nname = "{name}"\nkind = "webhook"\nurl = "{url}"\n'
                    f'secret = "{SECRET}"\nbatch_size = {batch}\nmax_in_flight = {lanes}\n'
                    "allow_private = true\n"  # the receiver is on loopback
                )
                rate, cpu = await drain(directory, sink, count)
                rows.append(
                    (
                        f"webhook, batch {batch}, {lanes} in flight",
                        f"{count}",
                        f"{rate:,.0f}",
                        f"{cpu:.1f}",
                    )
                )
                print(rows[-1])
        stream = f"dlrhub-bench-{uuid.uuid4().hex}"
        sink = f'[[sinks]]\nname = "redis"\nkind = "redis"\nstream = "{stream}"\nbatch_size = 500\n'
        try:
            rate, cpu = await drain(directory, sink, backlog)
        finally:
            client = Redis()
            await client.delete(stream)
            await client.aclose()
        rows.append(("redis stream, batch 500", f"{backlog}", f"{rate:,.0f}", f"{cpu:.1f}"))
        print(rows[-1])
    return rows


# 2. Latency under steady ingest -----------------------------------------------------


@contextlib.asynccontextmanager
async def dlrhub_serve(directory: Path, sink: str) -> AsyncIterator[str]:
    port = free_port()
    path = directory / "dlrhub.toml"
    path.write_text(
        f'data_dir = "{directory}"\nadmin_token = "bench-admin-token-0123456789"\n'
        f"[server]\naccess_log = false\n"
        f'[[sources]]\nname = "nrs360"\nprovider = "360nrs"\ntoken = "{TOKEN}"\n{sink}',
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    process = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "dlrhub", "serve", "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(base + "/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 15)


async def steady_load(base: str, rate: int, seconds: float, answered: dict[str, float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def one(message_id: str) -> None:
            form = urlencode({"id": message_id, "event": "delivered", "channel": "sms",
                              "eventDate": "2026-11-20 10:15:00"})  # fmt: skip
            answer = await client.post(
                "/hooks/nrs360/events",
                params={"token": TOKEN},
                content=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            if answer.status_code == 200:
                answered[message_id] = time.monotonic()

        tasks = []
        started = time.monotonic()
        for index in range(int(rate * seconds)):
            await asyncio.sleep(max(started + index / rate - time.monotonic(), 0))
            tasks.append(asyncio.create_task(one(f"lat-{index}")))
        await asyncio.gather(*tasks)


def percentiles(answered: dict[str, float], received: dict[str, float]) -> tuple[float, float]:
    latencies = sorted(received[key] - answered[key] for key in answered if key in received)
    missing = len(answered) - len(latencies)
    if missing:
        print(f"  warning: {missing} answered events not received")
    p50 = statistics.median(latencies)
    p99 = latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)]
    return p50 * 1000, p99 * 1000


async def webhook_latency(rate: int, seconds: float) -> tuple[float, float]:
    from tests.serving import serve_app
    from tests.sinks.conftest import Receiver

    receiver = Receiver()
    received: dict[str, float] = {}
    app = receiver.app()
    original = receiver.events

    class Recording(list[dict[str, object]]):
        def extend(self, items: object) -> None:
            now = time.monotonic()
            for item in items:  # type: ignore[attr-defined]
                received.setdefault(str(item["message_id"]), now)

    receiver.events = Recording(original)
    async with serve_app(app, timeout_graceful_shutdown=1) as url:
        sink = (
            f'[[sinks]]\nname = "hook"\nkind = "webhook"\nurl = "{url}/hook"\nsecret = "{SECRET}"\n'
            "allow_private = true\n"  # the receiver is on loopback
        )
        with tempfile.TemporaryDirectory() as temporary:
            async with dlrhub_serve(Path(temporary), sink) as base:
                answered: dict[str, float] = {}
                await steady_load(base, rate, seconds, answered)
                await asyncio.sleep(2)
    return percentiles(answered, received)


async def redis_latency(rate: int, seconds: float) -> tuple[float, float]:
    stream = f"dlrhub-bench-{uuid.uuid4().hex}"
    received: dict[str, float] = {}
    client = Redis()

    async def consume() -> None:
        last = "$"
        while True:
            answer = await client.xread({stream: last}, block=1000, count=1000)
            now = time.monotonic()
            for _, entries in answer:
                for entry_id, fields in entries:
                    received.setdefault(str(orjson.loads(fields[b"event"])["message_id"]), now)
                    last = entry_id

    sink = f'[[sinks]]\nname = "redis"\nkind = "redis"\nstream = "{stream}"\n'
    consumer = asyncio.create_task(consume())
    try:
        with tempfile.TemporaryDirectory() as temporary:
            async with dlrhub_serve(Path(temporary), sink) as base:
                answered: dict[str, float] = {}
                await steady_load(base, rate, seconds, answered)
                await asyncio.sleep(2)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await client.delete(stream)
        await client.aclose()
    return percentiles(answered, received)


# 3. Several workers on PostgreSQL ---------------------------------------------------

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SHARED_SINKS = 6


async def postgres_fanout(backlog: int, workers: int) -> None:
    import asyncpg

    from dlrhub.store.settings import open_store
    from dlrhub.store.sink_state_sql import SQLSinkState, open_sink_database

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store_table = f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
    with tempfile.TemporaryDirectory() as temporary, receiver_process() as url:
        sinks = "".join(
            f'[[sinks]]\nname = "hook{index}"\nkind = "webhook"\nurl = "{url}"\n'
            f'secret = "{SECRET}"\nbatch_size = 100\nmax_in_flight = 4\nallow_private = true\n'
            for index in range(SHARED_SINKS)
        )
        configs = []
        for number in range(workers):
            directory = Path(temporary) / f"worker{number}"
            directory.mkdir()
            path = directory / "dlrhub.toml"
            path.write_text(
                f'data_dir = "{directory}"\n[worker]\nlease = "15s"\n{sinks}{store_table}',
                encoding="utf-8",
            )
            configs.append(path)
        config = load_config(configs[0], env={})
        store = open_store(config.store, config.data_dir, migrate="auto")
        await store.open()
        state = SQLSinkState(open_sink_database(config.store, config.data_dir))
        await state.open()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            started = time.perf_counter()
            for start in range(0, backlog, 10_000):
                await ingest(store, make_events(min(10_000, backlog - start), messages=5000))
            print(f"stored a backlog of {backlog} events in {time.perf_counter() - started:.1f}s")
            head = backlog
            for sink in config.sinks:
                await state.ensure(sink.name, start_after=0)
                await state.set_paused(sink.name, True)
            env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
            for path in configs:
                processes.append(
                    subprocess.Popen(  # noqa: ASYNC220
                        [sys.executable, "-m", "dlrhub", "worker", "--config", str(path)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env=env,
                    )
                )
            while True:  # the leases spread: each worker holds its share
                owners = [s.lease_owner for s in await state.states() if s.lease_owner]
                counts = sorted(owners.count(owner) for owner in set(owners))
                share = -(-SHARED_SINKS // workers)
                if len(owners) == SHARED_SINKS and len(counts) == workers and counts[-1] <= share:
                    break
                await asyncio.sleep(0.2)
            started = time.perf_counter()
            for sink in config.sinks:
                await state.set_paused(sink.name, False)
            while any(s.after_seq < head for s in await state.states()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.to_thread(process.wait, 30)
            await state.close()
            await store.close()
            connection = await asyncpg.connect(POSTGRES_DSN)
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.close()
    rate = SHARED_SINKS * backlog / elapsed
    print()
    print(f"{'postgres, 6 webhook sinks':<30} {'workers':>8} {'events':>8} {'events/s':>10}")
    print(f"{'':<30} {workers:>8} {SHARED_SINKS * backlog:>8} {rate:>10,.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="dlrhub worker processes (postgres)")
    parser.add_argument("--backlog", type=int, default=None, help="default 100000; postgres 20000")
    parser.add_argument("--single", type=int, default=20_000, help="events for batch 1")
    parser.add_argument("--rate", type=int, default=200, help="callbacks/s for latency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--throughput-only", action="store_true", help="skip the latency part")
    args = parser.parse_args()
    if args.backend == "postgres":
        await postgres_fanout(args.backlog or 20_000, args.workers)
        return
    rows = await throughput(args.backlog or 100_000, args.single)
    latency_rows = []
    measures = (("webhook", webhook_latency), ("redis stream", redis_latency))
    for name, measure in () if args.throughput_only else measures:
        p50, p99 = await measure(args.rate, args.seconds)
        latency_rows.append(
            (name, f"{args.rate}/s x {args.seconds:g}s", f"{p50:.1f}", f"{p99:.1f}")
        )
        print(latency_rows[-1])
    print()
    print(f"{'drain a backlog':<38} {'events':>8} {'events/s':>10} {'CPU us/event':>13}")
    for name, count, rate, cpu in rows:
        print(f"{name:<38} {count:>8} {rate:>10} {cpu:>13}")
    print()
    print(f"{'ingest answer -> consumer':<20} {'load':>14} {'p50 ms':>8} {'p99 ms':>8}")
    for name, load, p50_text, p99_text in latency_rows:
        print(f"{name:<20} {load:>14} {p50_text:>8} {p99_text:>8}")


if __name__ == "__main__":
    asyncio.run(main())
