"""`dlrhub serve` and `dlrhub worker` as real processes delivering to a webhook receiver.

One of them delivers per data directory: a second one is refused at start, and
SIGKILL of the first frees the place.

The SIGKILL test: a backlog is being delivered when the server is killed with
SIGKILL; after a restart on the same data directory every event arrives, and
the only duplicates are events after the cursor committed at the kill (the
ones in flight), at most one page of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import stat
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from dlrhub.store import SQLiteStore
from dlrhub.store.database import SQLiteDatabase
from dlrhub.store.sink_state_sql import SQLSinkState
from tests.conftest import SOURCE_TOKEN
from tests.conftest import write_config as write_base_config
from tests.processes import (
    ServerProcess,
    dlrhub_argv,
    dlrhub_serve,
    environment_without_dlrhub,
    free_port,
    prints,
    run_dlrhub,
)
from tests.sinks.conftest import SECRET, Receiver, ingest, make_events
from tests.waiting import eventually_async

pytestmark = pytest.mark.slow


def write_config(directory: Path, receiver: Receiver, batch_size: int = 20) -> Path:
    """The shared test configuration with one webhook sink to `receiver`."""
    return write_base_config(
        directory,
        f"""
[server]
access_log = false

[[sinks]]
name = "hook"
kind = "webhook"
url = "{receiver.base_url}/hook"
allow_private = true
secret = "{SECRET}"
batch_size = {batch_size}
max_in_flight = 2
retry = {{ initial = "50ms", max = "500ms" }}
""",
    )


@contextlib.asynccontextmanager
async def dlrhub_process(
    config: Path, *command: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`dlrhub serve` (once /healthz answers) or `dlrhub worker` (once it says it delivers)."""
    arguments = (*command, "--config", str(config))
    if command[0] == "serve":
        async with dlrhub_serve(*arguments[1:], log_dir=config.parent) as server:
            yield server.process, server.base_url
        return
    worker = ServerProcess(
        dlrhub_argv(*arguments),
        config.parent / f"{command[0]}.log",
        prints("dlrhub worker: delivering"),
        env=environment_without_dlrhub(),
    )
    await worker.start()
    try:
        yield worker.process, ""
    finally:
        await worker.stop()


async def store_backlog(config_dir: Path, count: int) -> list[str]:
    store = SQLiteStore(config_dir / "data" / "dlrhub.sqlite3")
    await store.open()
    try:
        events = make_events(count, messages=100)
        await ingest(store, events)
    finally:
        await store.close()
    return [event.id for event in events]


async def committed_cursor(config_dir: Path) -> int:
    state = SQLSinkState(SQLiteDatabase(config_dir / "data" / "dlrhub.sqlite3"))
    await state.open()
    try:
        current = await state.state("hook")
        return current.after_seq if current is not None else 0
    finally:
        await state.close()


async def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    receiver.hang_seconds = 0.01
    receiver.mode = "slow"
    config = write_config(tmp_path, receiver)
    ids = await store_backlog(tmp_path, 3000)
    async with dlrhub_process(config, "serve") as (process, _):
        await eventually_async(lambda: len(receiver.events) >= 1000, 60)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    before_kill = len(receiver.events)
    cursor = await committed_cursor(tmp_path)
    assert 0 < cursor < 3000
    receiver.mode = "ok"
    async with dlrhub_process(config, "serve") as (_, base_url):
        await eventually_async(lambda: receiver.ids >= set(ids), 60)
        # The restarted server also takes and delivers new callbacks.
        form = urlencode({"id": "after-restart", "event": "delivered", "channel": "sms",
                          "eventDate": "2026-11-20 10:15:00"})  # fmt: skip
        async with httpx.AsyncClient(base_url=base_url) as client:
            answer = await client.post(
                "/hooks/nrs360/events",
                params={"token": SOURCE_TOKEN},
                content=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        assert answer.status_code == 200, answer.text
        await eventually_async(
            lambda: any(e["message_id"] == "after-restart" for e in receiver.events)
        )
    seq_of = {event["id"]: int(event["seq"]) for event in receiver.events}
    counts = Counter(event["id"] for event in receiver.events)
    duplicates = {event_id for event_id, count in counts.items() if count > 1}
    assert all(seq_of[event_id] > cursor for event_id in duplicates), "acknowledged twice"
    assert len(duplicates) <= 200  # one page in flight at most
    redelivered = [event for event in receiver.events[before_kill:] if event["id"] in ids]
    assert min(int(event["seq"]) for event in redelivered) == cursor + 1


async def test_worker_delivers_what_serve_no_sinks_stores(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path, receiver, batch_size=1)
    async with (
        dlrhub_process(config, "serve", "--no-sinks") as (_, base_url),
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        for index in range(30):
            form = urlencode({"id": f"worker-{index}", "event": "sent", "channel": "sms",
                                  "eventDate": "2026-11-20 10:15:00"})  # fmt: skip
            answer = await client.post(
                "/hooks/nrs360/events",
                params={"token": SOURCE_TOKEN},
                content=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 200
        # A fixed wait, knowingly: with --no-sinks there is no runner in serve whose later
        # progress could prove time passed; /metrics below shows there is none.
        await asyncio.sleep(0.5)
        assert receiver.events == []  # --no-sinks: nothing delivered by serve
        async with dlrhub_process(config, "worker"):
            await eventually_async(lambda: len(receiver.ids) == 30, 30)
        metrics = (await client.get("/metrics")).text
        assert "dlrhub_sink_delivered" not in metrics
    assert {event["message_id"] for event in receiver.events} == {
        f"worker-{index}" for index in range(30)
    }


async def post_callbacks(base_url: str, prefix: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for index in range(count):
            form = urlencode({"id": f"{prefix}-{index}", "event": "sent", "channel": "sms",
                              "eventDate": "2026-11-20 10:15:00"})  # fmt: skip
            answer = await client.post(
                "/hooks/nrs360/events",
                params={"token": SOURCE_TOKEN},
                content=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 200


async def test_ingest_answers_while_every_sink_is_down(
    tmp_path: Path, receiver: Receiver, refused_port: int
) -> None:
    """One sink's endpoint holds its request unanswered, the other refuses connections.

    Ingest keeps answering 200 for every callback while the hung delivery is still
    open: the receiver never waits for sinks. (How much latency sinks add under load
    is measured by bench/fanout.py, not asserted here.)
    """
    from dlrhub.app import create_app
    from dlrhub.config import load_config
    from dlrhub.sinks.service import SinkService
    from tests.serving import serve_app

    receiver.mode = "hang"
    path = write_config(tmp_path, receiver)
    dead_port = refused_port
    path.write_text(
        path.read_text() + f'timeout = "30s"\n[[sinks]]\nname = "refused"\nkind = "webhook"\n'
        f'url = "http://127.0.0.1:{dead_port}/hook"\nsecret = "{SECRET}"\nallow_private = true\n'
    )
    config = load_config(path, env={})
    service = SinkService(config, poll_interval=0.01, control_interval=0.05)
    app = create_app(config, services=[service])
    async with serve_app(app, timeout_graceful_shutdown=1) as base_url:
        await post_callbacks(base_url, "first", 1)
        await eventually_async(lambda: len(receiver.requests) >= 1, 10)  # a delivery now hangs
        await post_callbacks(base_url, "during", 200)
        await eventually_async(lambda: service.runners[1].stats.lag_events >= 201, 10)
        assert service.runners[1].stats.state == "down"
        assert len(receiver.requests) == 1, "the hung delivery is still open"
        assert [runner.stats.delivered for runner in service.runners] == [0, 0]


def refused_by(result: subprocess.CompletedProcess[str], holder: int, lock: Path) -> str:
    """The one line a refused `worker` or `serve` printed, naming `holder` and `lock`."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dlrhub: the sinks of "), lines[0]
    assert f"delivered by process {holder} (" in lines[0], lines[0]
    assert f"(lock file {lock})" in lines[0], lines[0]
    return lines[0]


async def test_one_process_delivers_per_data_directory(tmp_path: Path, receiver: Receiver) -> None:
    """A second deliverer is refused at start; `serve --no-sinks` is not; SIGKILL frees it."""
    config = write_config(tmp_path, receiver, batch_size=1)
    lock = tmp_path / "data" / "dlrhub.sqlite3.sinks.lock"
    backlog = await store_backlog(tmp_path, 20)
    async with dlrhub_process(config, "worker") as (worker, _):
        await eventually_async(lambda: receiver.ids >= set(backlog), 30)
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert lock.read_text().startswith(f"{worker.pid} ")
        second = await run_dlrhub("worker", "--config", str(config), cwd=tmp_path)
        assert "worker --config" in refused_by(second, worker.pid, lock)
        serve = await run_dlrhub(
            "serve", "--config", str(config), "--port", str(free_port()), cwd=tmp_path
        )
        refused_by(serve, worker.pid, lock)
        assert "listening" not in serve.stdout, "refused before it served"

        async with dlrhub_process(config, "serve", "--no-sinks") as (_, base_url):
            await post_callbacks(base_url, "beside", 10)
            await eventually_async(lambda: len(receiver.events) == 30, 30)
            before_kill = Counter(event["id"] for event in receiver.events)
            assert set(before_kill.values()) == {1}, "one deliverer: every event delivered once"
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            await post_callbacks(base_url, "after-kill", 10)
            async with dlrhub_process(config, "worker") as (restarted, _):
                assert lock.read_text().startswith(f"{restarted.pid} ")
                await eventually_async(lambda: len(receiver.ids) == 40, 30)
    # SIGKILL may land before the cursor of the last deliveries is committed: those may
    # come again (at least once). Every event stored after the kill comes exactly once.
    delivered = Counter(event["id"] for event in receiver.events)
    assert all(count == 1 for id_, count in delivered.items() if id_ not in before_kill)
    assert {event["message_id"] for event in receiver.events} >= {
        *(f"beside-{index}" for index in range(10)),
        *(f"after-kill-{index}" for index in range(10)),
    }


async def test_serve_with_sinks_holds_the_data_directory(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = write_config(tmp_path, receiver)
    lock = tmp_path / "data" / "dlrhub.sqlite3.sinks.lock"
    async with dlrhub_process(config, "serve") as (serve, _):
        worker = await run_dlrhub("worker", "--config", str(config), cwd=tmp_path)
        assert "serve --config" in refused_by(worker, serve.pid, lock)
        # Killed at once: its ingest worker process (a child) must not hold the lock on.
        serve.send_signal(signal.SIGKILL)
        await serve.wait()
    worker_after = ServerProcess(
        dlrhub_argv("worker", "--config", str(config)),
        tmp_path / "worker-after.log",
        prints("dlrhub worker: delivering"),
        env=environment_without_dlrhub(),
    )
    await worker_after.start()  # the lock went with serve
    await worker_after.stop()
