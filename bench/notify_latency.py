"""Commit to first delivery on PostgreSQL: LISTEN/NOTIFY against the slow poll alone.

    /work/venv/bin/python bench/notify_latency.py [--events 300] [--rate 50]

A PostgreSQL store (127.0.0.1:5432, a schema of its own) takes one callback's
events per commit at a steady `--rate`; a sink worker (a `SinkService` in a
child process, default intervals: a NOTIFY wakes it, the table is polled every
second as a fallback) delivers them to a sink that notes the time. Latency =
first delivery - the moment the commit returned, on the one machine's clock.
The second row is the same worker with LISTEN off (the 1 s poll alone).

Prints a table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers make the events

from dlrhub.config import Config, load_config  # noqa: E402
from dlrhub.event import Event  # noqa: E402
from dlrhub.store.settings import open_store  # noqa: E402
from tests.sinks.conftest import ingest, make_events  # noqa: E402

DSN = "postgresql://postgres@127.0.0.1:5432/test"


def config_for(directory: Path, schema: str) -> Config:
    path = directory / "dlrhub.toml"
    path.write_text(
        f'data_dir = "{directory}"\n[[sinks]]\nname = "timed"\nkind = "stdout"\n'
        f'[store]\nbackend = "postgres"\ndsn = "{DSN}"\nschema = "{schema}"\n',
        encoding="utf-8",
    )
    return load_config(path, env={})


class TimedSink:
    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Event]) -> None:
        now = time.time()
        self.pipe.send([(event.id, now) for event in batch])


def run_worker(directory: str, schema: str, listen: bool, pipe: Connection) -> None:
    from dlrhub.sinks.service import SinkService

    async def work() -> None:
        config = config_for(Path(directory), schema)
        service = SinkService(config, create=lambda _: TimedSink(pipe), listen=listen)
        await service.start()
        while listen and not (service.notifications and service.notifications.listening):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        pipe.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
        await service.stop()

    asyncio.run(work())


async def measure(events_count: int, rate: float, listen: bool) -> tuple[float, float]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as temporary:
        config = config_for(Path(temporary), schema)
        store = open_store(config.store, config.data_dir, migrate="auto")
        await store.open()
        ours, theirs = multiprocessing.Pipe()
        worker = multiprocessing.Process(
            target=run_worker, args=(temporary, schema, listen, theirs), daemon=True
        )
        worker.start()
        committed: dict[str, float] = {}
        delivered: dict[str, float] = {}
        try:
            assert await asyncio.to_thread(ours.recv) == "ready"
            events = make_events(events_count, messages=events_count)

            def read_deliveries() -> None:  # at once: a full pipe would block the worker
                deadline = time.monotonic() + events_count / rate + 10
                while len(delivered) < len(events) and time.monotonic() < deadline:
                    if ours.poll(0.2):
                        for event_id, at in ours.recv():
                            delivered.setdefault(event_id, at)

            reading = asyncio.create_task(asyncio.to_thread(read_deliveries))
            started = time.monotonic()
            for index, event in enumerate(events):
                await asyncio.sleep(max(started + index / rate - time.monotonic(), 0))
                await ingest(store, [event])
                committed[event.id] = time.time()
            await reading
            ours.send("stop")
            worker.join(20)
        finally:
            await store.close()
            connection = await asyncpg.connect(DSN)
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await connection.close()
    latencies = sorted(delivered[key] - committed[key] for key in committed if key in delivered)
    if len(latencies) < len(committed):
        print(f"  warning: {len(committed) - len(latencies)} events not delivered")
    p99 = latencies[min(int(len(latencies) * 0.99), len(latencies) - 1)]
    return statistics.median(latencies) * 1000, p99 * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="commits/s")
    args = parser.parse_args()
    rows = []
    for name, listen in (("LISTEN/NOTIFY (+1 s poll)", True), ("1 s poll alone", False)):
        p50, p99 = await measure(args.events, args.rate, listen)
        rows.append((name, p50, p99))
        print(rows[-1])
    print()
    print(f"{'commit -> first delivery':<28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p50, p99 in rows:
        print(f"{name:<28} {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
