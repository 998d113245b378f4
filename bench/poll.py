"""Benchmark of the status poller: throughput per account, scheduler CPU per poll, memory.

    python bench/poll.py [--messages 50000] [--seconds 20] [--concurrency 32]

1. `--messages` messages are tracked for one Onurix account (one executemany).
2. Throughput: a fake Onurix answering in `--latency` (20 ms) runs in another
   process (`dlrhub.testing`); the poller polls the due messages for `--seconds`
   with `--concurrency` requests in flight and no rate limit. Reported: messages
   polled per second for the account.
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
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dlrhub.config import Config, parse_config
from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.outbound.transport import Exchange, Transport
from dlrhub.providers.onurix.client import OnurixClient
from dlrhub.store.settings import open_store
from dlrhub.store.tracking_sql import open_tracking

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_for(data: Path, base_url: str, concurrency: int, batch: int) -> Config:
    return parse_config(
        {
            "data_dir": str(data),
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
    )


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
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    rss_start = current_rss_mb()

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
            http_config = config_for(
                Path(directory) / "http",
                f"http://127.0.0.1:{port}/api/v1",
                args.concurrency,
                args.batch,
            )
            tracked = asyncio.run(track(http_config, args.messages))
            rows.append((f"track {args.messages} messages (one insert)", f"{tracked:.2f} s"))
            polled, wall, cpu = asyncio.run(poll_for(http_config, args.seconds, None))
            rows.append(
                (
                    f"HTTP polls in {wall:.1f} s (fake answers in {args.latency * 1000:.0f} ms, "
                    f"{args.concurrency} in flight)",
                    f"{polled}",
                )
            )
            rows.append(("messages polled per second, one account", f"{polled / wall:.0f}"))
            rows.append(
                (
                    "CPU ms per HTTP poll (poller process, httpx included)",
                    f"{cpu / max(polled, 1) * 1000:.2f}",
                )
            )
        finally:
            fake.terminate()
            fake.wait(10)

        canned_config = config_for(
            Path(directory) / "canned", "http://127.0.0.1:9/api/v1", args.concurrency, args.batch
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
