"""A 200 answer means committed: SIGKILL the real server mid-load and count.

`dlrhub serve` runs as a subprocess and takes a few thousand unique callbacks
from 32 concurrent clients. When about 60% have been answered 200 the process
is killed with SIGKILL while requests are still in flight, then started again
on the same data directory. Every event id a 200 answer named must be in the
log, once, in strictly increasing `seq` order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.processes import ServerProcess, dlrhub_serve

CALLBACKS = 3_600
CONCURRENCY = 32
KILL_AT_FRACTION = 0.6
MIN_ACKNOWLEDGED = 2_000

pytestmark = pytest.mark.slow


@dataclass(frozen=True, slots=True)
class Callback:
    """One unique provider callback; `key` is the message id or ref it carries."""

    key: str
    method: str
    path: str
    params: dict[str, str]
    body: str | None = None


@dataclass
class Load:
    acknowledged: dict[str, list[str]] = field(default_factory=dict)  # key -> event ids
    refused: int = 0  # answered, but not 200
    failed: int = 0  # connection errors: not acknowledged
    in_flight_at_kill: int = 0
    killed: bool = False


def make_callbacks(count: int) -> list[Callback]:
    """Alternating event-notification forms and delivery receipts, each unique."""
    callbacks = []
    for index in range(count):
        if index % 2 == 0:
            key = f"crash-msg-{index:05d}"
            form = {
                "id": key,
                "channel": "sms",
                "contactId": str(40_000 + index),
                "campaignId": "9911",
                "campaignName": "Campaña de otoño",
                "event": "delivered",
                "eventDate": "2026-11-20 10:15:00",
            }
            callbacks.append(
                Callback(
                    key,
                    "POST",
                    "/hooks/nrs360/events",
                    {"token": SOURCE_TOKEN},
                    urlencode(form),
                )
            )
        else:
            key = f"crash-ref-{index:05d}"
            params = {
                "token": SOURCE_TOKEN,
                "status": "1",
                "phone": f"+34600{index:06d}",
                "ref": key,
            }
            callbacks.append(Callback(key, "GET", "/hooks/nrs360/dlr", params))
    return callbacks


@contextlib.asynccontextmanager
async def dlrhub_server(
    config_path: Path, log_dir: Path, name: str
) -> AsyncIterator[ServerProcess]:
    """`python -m dlrhub serve` on a free loopback port; killed on the way out."""
    async with dlrhub_serve(
        "--config", str(config_path), log_dir=log_dir, name=name, cwd=log_dir, grace=0
    ) as server:
        yield server


async def fire(server: ServerProcess, callbacks: list[Callback]) -> Load:
    """Send `callbacks` from CONCURRENCY clients; SIGKILL the server at KILL_AT_FRACTION."""
    load = Load()
    kill_at = int(len(callbacks) * KILL_AT_FRACTION)
    queue = iter(callbacks)
    in_flight = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0, limits=limits) as client:

        async def worker() -> None:
            nonlocal in_flight
            for callback in queue:
                if load.killed:
                    return
                in_flight += 1
                try:
                    answer = await client.request(
                        callback.method,
                        callback.path,
                        params=callback.params,
                        content=callback.body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"}
                        if callback.body is not None
                        else None,
                    )
                except httpx.TransportError:
                    load.failed += 1
                    continue
                finally:
                    in_flight -= 1
                if answer.status_code != 200:
                    load.refused += 1
                    continue
                load.acknowledged[callback.key] = answer.json()["event_ids"]
                if not load.killed and len(load.acknowledged) >= kill_at:
                    load.in_flight_at_kill = in_flight
                    os.kill(server.process.pid, signal.SIGKILL)
                    load.killed = True

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return load


async def read_all_events(server: ServerProcess) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    after_seq = 0
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10.0) as admin:
        while True:
            answer = await admin.get("/v1/events", params={"after_seq": after_seq, "limit": 1000})
            assert answer.status_code == 200, answer.text
            page: list[dict[str, object]] = answer.json()["events"]
            if not page:
                return events
            events += page
            after_seq = int(str(page[-1]["seq"]))


async def test_every_acknowledged_callback_survives_sigkill(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, "[server]\naccess_log = false\n")
    callbacks = make_callbacks(CALLBACKS)
    by_key = {callback.key: callback for callback in callbacks}
    started = time.monotonic()

    async with dlrhub_server(config_path, tmp_path, "first") as server:
        load = await fire(server, callbacks)
        assert load.killed, f"the server was never killed: only {len(load.acknowledged)} acks"
        code = await asyncio.wait_for(server.process.wait(), 10)
        assert code == -signal.SIGKILL, f"the server exited with {code}, not by SIGKILL"
    loaded = time.monotonic()

    async with dlrhub_server(config_path, tmp_path, "second") as server:
        events = await read_all_events(server)
        # A provider retrying an acknowledged callback gets the same ids back.
        retried = sorted(load.acknowledged)[:: max(1, len(load.acknowledged) // 20)]
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            for key in retried:
                callback = by_key[key]
                answer = await client.request(
                    callback.method,
                    callback.path,
                    params=callback.params,
                    content=callback.body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"}
                    if callback.body is not None
                    else None,
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["duplicate"] is True, (key, answer.json())
                assert answer.json()["event_ids"] == load.acknowledged[key], key

    acknowledged_ids = [i for ids in load.acknowledged.values() for i in ids]
    stored_ids = [str(event["id"]) for event in events]
    seqs = [int(str(event["seq"])) for event in events]
    print(
        f"\n{len(callbacks)} callbacks: {len(load.acknowledged)} acknowledged, "
        f"{load.failed} connection errors, {load.refused} non-200, "
        f"{load.in_flight_at_kill} in flight at SIGKILL; {len(events)} events stored "
        f"({len(events) - len(acknowledged_ids)} committed but never acknowledged); "
        f"load {loaded - started:.1f}s, total {time.monotonic() - started:.1f}s"
    )

    assert len(load.acknowledged) >= MIN_ACKNOWLEDGED, (
        f"only {len(load.acknowledged)} callbacks were acknowledged before the kill"
    )
    assert load.in_flight_at_kill > 0, "no request was in flight when the server was killed"
    assert all(len(ids) == 1 for ids in load.acknowledged.values())
    assert len(set(acknowledged_ids)) == len(acknowledged_ids), "two acks named the same event"
    duplicates = len(stored_ids) - len(set(stored_ids))
    assert duplicates == 0, f"{duplicates} event id(s) appear more than once in the log"
    missing = set(acknowledged_ids) - set(stored_ids)
    assert not missing, (
        f"{len(missing)} of {len(acknowledged_ids)} acknowledged events were lost, "
        f"e.g. {sorted(missing)[:5]}"
    )
    assert all(a < b for a, b in itertools.pairwise(seqs)), "seq is not increasing"
    strangers = {
        str(event.get("message_id") or event.get("correlation_id")) for event in events
    } - set(by_key)
    assert not strangers, f"events for callbacks never sent: {sorted(strangers)[:5]}"
    assert len(events) <= len(callbacks)
