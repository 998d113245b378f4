"""`dlrhub serve` with `server.processes = 2` (and 1), on SQLite and on PostgreSQL, as a process.

Callbacks arrive on fresh connections, so the kernel hands them to both receiver
processes (each answer names its process in `X-Dlrhub-Receiver`). Every callback
answered 200 must be stored once, in a log whose `seq` has no gap; a receiver
killed with SIGKILL is started again by the parent; SIGTERM stops everything
within `shutdown_timeout`, and what was answered 200 until then is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dlrhub.config import load_config
from dlrhub.store import EventFilter
from dlrhub.store.settings import open_store
from tests.conftest import SOURCE_TOKEN, write_config
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.processes import ServerProcess, dlrhub_serve
from tests.waiting import eventually_async

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SHUTDOWN_TIMEOUT = 8.0
CONCURRENCY = 8
RECEIVER_MODULE = b"dlrhub.commands.serving"
WORKER_MODULE = b"dlrhub.receiver.ingest_worker"


@contextlib.asynccontextmanager
async def config_file(tmp_path: Path, backend: str, processes: int = 2) -> AsyncIterator[Path]:
    """dlrhub.toml for receiver processes on `backend` (a fresh schema on PostgreSQL)."""
    server = f"[server]\nprocesses = {processes}\naccess_log = false\n"
    if backend == "sqlite":
        yield with_shutdown_timeout(write_config(tmp_path, server))
        return
    async with fresh_schema() as schema:
        store = f'[store]\nbackend = "postgres"\ndsn = "{POSTGRES_DSN}"\nschema = "{schema}"\n'
        yield with_shutdown_timeout(write_config(tmp_path, server + store))


def with_shutdown_timeout(path: Path) -> Path:
    """`path` with the top-level `shutdown_timeout` (before the tables)."""
    text = path.read_text(encoding="utf-8")
    path.write_text(f"shutdown_timeout = {SHUTDOWN_TIMEOUT}\n{text}", encoding="utf-8")
    return path


@dataclass
class Load:
    acknowledged: dict[str, list[str]] = field(default_factory=dict)  # message id -> event ids
    receivers: set[str] = field(default_factory=set)  # X-Dlrhub-Receiver values seen
    duplicates: int = 0
    not_acknowledged: int = 0  # a non-200 answer or a connection error
    refused: bool = False  # a connection was refused: the server has stopped listening


async def post(client: httpx.AsyncClient, message_id: str, load: Load) -> None:
    body = urlencode({"id": message_id, "event": "delivered", "channel": "sms"})
    try:
        answer = await client.post(
            f"/hooks/nrs360/events?token={SOURCE_TOKEN}", content=body, headers=FORM
        )
    except httpx.TransportError as error:
        load.not_acknowledged += 1
        load.refused = load.refused or isinstance(error, httpx.ConnectError)
        return
    if answer.status_code != 200:
        load.not_acknowledged += 1
        return
    load.receivers.add(answer.headers.get("x-dlrhub-receiver", "the only one"))
    if answer.json()["duplicate"]:
        load.duplicates += 1
    else:
        load.acknowledged[message_id] = answer.json()["event_ids"]


async def send(
    server: ServerProcess, message_ids: list[str], load: Load, *, stop_when_refused: bool = False
) -> None:
    """POST each message id once, CONCURRENCY at a time, each on a new connection."""
    queue = iter(message_ids)
    limits = httpx.Limits(max_keepalive_connections=0)  # new connections: spread over both
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=10) as client:

        async def worker() -> None:
            for message_id in queue:
                if load.refused and stop_when_refused:
                    return
                await post(client, message_id, load)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def send_until_both_answer(server: ServerProcess, prefix: str) -> Load:
    """Batches of new callbacks until both processes have answered some (the second
    may still be starting when /healthz first answers)."""
    load = Load()
    for attempt in range(20):
        await send(server, [f"{prefix}-{attempt}-{number}" for number in range(40)], load)
        if load.receivers == {"0", "1"}:
            return load
    raise AssertionError(f"only receiver processes {load.receivers} answered")


def receiver_pids(parent: int) -> list[int]:
    """The receiver processes of `dlrhub serve` (its other child is the ingest worker)."""
    return children_running(parent, RECEIVER_MODULE)


async def stored_events(config_path: Path) -> list[tuple[int, str | None, str]]:
    """(seq, message id, event id) of every stored event, read from the store itself."""
    config = load_config(config_path, env={})
    store = open_store(config.store, config.data_dir)
    await store.open()
    try:
        events = await store.events(EventFilter(limit=100_000))
    finally:
        await store.close()
    return [(event.seq, event.message_id, event.id) for event in events]


def check_stored_once(events: list[tuple[int, str | None, str]], load: Load) -> None:
    seqs = [seq for seq, _, _ in events]
    assert seqs == list(range(1, len(events) + 1)), "seq has a gap or is out of order"
    message_ids = [message_id for _, message_id, _ in events]
    assert len(message_ids) == len(set(message_ids)), "a callback was stored twice"
    stored_ids = {event_id for _, _, event_id in events}
    for message_id, event_ids in load.acknowledged.items():
        assert set(event_ids) <= stored_ids, f"{message_id} was answered 200 but is not stored"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_two_receiver_processes_share_the_log_and_one_is_restarted_after_sigkill(
    tmp_path: Path, backend: str
) -> None:
    async with config_file(tmp_path, backend) as config_path:
        events = await run_and_kill_one(config_path, tmp_path)
    for load_part in events[1:]:
        check_stored_once(events[0], load_part)


async def run_and_kill_one(
    config_path: Path, log_dir: Path
) -> tuple[list[tuple[int, str | None, str]], Load, Load, Load]:
    async with dlrhub_serve("--config", str(config_path), log_dir=log_dir) as server:
        first = await send_until_both_answer(server, "m")
        assert first.not_acknowledged == 0

        # A provider's retries reach either process: each is a duplicate, stored once.
        retries = Load()
        retried = sorted(first.acknowledged)[::3]
        await send(server, retried, retries)
        assert (retries.duplicates, retries.not_acknowledged) == (len(retried), 0)

        # SIGKILL one receiver mid-load: the other (and the port's backlog) keeps taking
        # callbacks, and the parent starts a new one.
        before = receiver_pids(server.process.pid)
        assert len(before) == 2
        during = Load()
        load = asyncio.create_task(send(server, [f"k-{n}" for n in range(200)], during))
        await eventually_async(lambda: len(during.acknowledged) >= 40, 30)
        os.kill(before[0], signal.SIGKILL)
        await load

        def restarted() -> bool:
            now = receiver_pids(server.process.pid)
            return len(now) == 2 and before[0] not in now

        await eventually_async(restarted, 30, "the parent to start a new receiver process")
        after = await send_until_both_answer(server, "a")
        assert server.process.returncode is None
        assert len(during.acknowledged) > 40
        assert await server.stop() is not None

    return await stored_events(config_path), first, during, after


@pytest.mark.parametrize(
    ("backend", "processes"), [("sqlite", 2), ("postgres", 2), ("sqlite", 1), ("postgres", 1)]
)
async def test_sigterm_answers_what_is_in_flight_and_exits_within_shutdown_timeout(
    tmp_path: Path, backend: str, processes: int
) -> None:
    async with config_file(tmp_path, backend, processes) as config_path:
        load, exited_after, children = await run_and_terminate(config_path, tmp_path)
        events = await stored_events(config_path)
    print(f"\n{len(load.acknowledged)} acknowledged; exited {exited_after:.2f} s after SIGTERM")
    assert exited_after < SHUTDOWN_TIMEOUT + 2, f"exited {exited_after:.1f} s after SIGTERM"
    assert load.not_acknowledged > 0, "the load ended before the server stopped"
    assert not [pid for pid in children if _alive(pid)], "a receiver process outlived dlrhub"
    check_stored_once(events, load)


async def run_and_terminate(config_path: Path, log_dir: Path) -> tuple[Load, float, list[int]]:
    async with dlrhub_serve("--config", str(config_path), log_dir=log_dir) as server:
        load = Load()
        sending = asyncio.create_task(
            send(server, [f"t-{n}" for n in range(100_000)], load, stop_when_refused=True)
        )
        await eventually_async(lambda: len(load.acknowledged) >= 100, 30)
        children = [int(pid) for pid in receiver_pids(server.process.pid)]
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.wait_for(server.process.wait(), SHUTDOWN_TIMEOUT + 10)
        exited_after = time.monotonic() - signalled
        await sending
        # One process is Uvicorn itself, which ends by the signal it stopped for.
        assert code in (0, -signal.SIGTERM), server.output()
    return load, exited_after, children


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    return False


async def test_the_shared_ingest_worker_is_restarted_and_the_receivers_reconnect(
    tmp_path: Path,
) -> None:
    async with (
        config_file(tmp_path, "sqlite") as config_path,
        dlrhub_serve("--config", str(config_path), log_dir=tmp_path) as server,
    ):
        first = await send_until_both_answer(server, "before")
        (worker,) = children_running(server.process.pid, WORKER_MODULE)
        os.kill(worker, signal.SIGKILL)

        def restarted() -> bool:
            return children_running(server.process.pid, WORKER_MODULE) not in ([], [worker])

        await eventually_async(restarted, 30, "the parent to start a new ingest worker")
        after = await send_until_both_answer(server, "after")
        events = await stored_events(config_path)
    for load in (first, after):
        check_stored_once(events, load)


def children_running(parent: int, module: bytes) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    found = []
    for child in map(int, children):
        with contextlib.suppress(OSError):
            if module in Path(f"/proc/{child}/cmdline").read_bytes() and _alive(child):
                found.append(child)
    return found
