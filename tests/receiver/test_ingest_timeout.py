"""A stalled commit answers 503 with Retry-After within `server.ingest_timeout`, never hangs.

A stopped ingest worker (SIGSTOP) or a store whose write lock another process
holds: the callbacks waiting for it are answered 503 and `/readyz` says 503
while it lasts. Afterwards the provider's retries are answered 200, as
duplicates of what the store committed late, and each callback is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from dlrhub.receiver.ingest_worker import IngestWorker
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.payloads import FORM, event_form
from tests.serving import serve_app
from tests.waiting import eventually_async

TIMEOUT_SECONDS = 1.0
CALLBACKS = 6


@pytest.fixture
def config(tmp_path: Path) -> Config:
    extra = f"[server]\ningest_timeout = {TIMEOUT_SECONDS}\n"
    return load_config(write_config(tmp_path, extra=extra), env={})


@contextlib.asynccontextmanager
async def served(config: Config, *, ingest_worker: bool) -> AsyncIterator[tuple[object, str]]:
    app = create_app(config, ingest_worker=ingest_worker)
    async with serve_app(app) as base_url:
        yield app, base_url


async def post_all(client: httpx.AsyncClient, forms: list[str]) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            client.post(
                "/hooks/nrs360/events", params={"token": SOURCE_TOKEN}, headers=FORM, content=form
            )
            for form in forms
        )
    )


def forms(prefix: str) -> list[str]:
    return [event_form("delivered", message_id=f"{prefix}-{n}") for n in range(CALLBACKS)]


def assert_answered_503(answers: list[httpx.Response]) -> None:
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert answer.json()["error"] == "store_unavailable"


async def retry_when_ready(
    client: httpx.AsyncClient, sent: list[str], prefix: str
) -> list[httpx.Response]:
    """Once /readyz says 200, send `sent` again: each is answered 200 as a duplicate of the
    late commit, and the log holds each message exactly once."""
    await eventually_async(lambda: _status(client, "/readyz", 200), 30, "/readyz to say 200")
    retried = await post_all(client, sent)
    assert [answer.status_code for answer in retried] == [200] * len(sent)
    assert all(answer.json()["duplicate"] for answer in retried), [r.text for r in retried]
    answer = await client.get(
        "/v1/events", params={"limit": 1000}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    ids = sorted(event["message_id"] for event in answer.json()["events"])
    assert ids == sorted(f"{prefix}-{n}" for n in range(len(sent)))
    return retried


async def _status(client: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await client.get(path)).status_code == status


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_stopped_worker_is_answered_for_with_503_and_retries_store_once(
    config: Config,
) -> None:
    async with (
        served(config, ingest_worker=True) as (app, base_url),
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        worker: IngestWorker = app.state.ingest_worker  # type: ignore[attr-defined]
        assert worker.pid is not None
        sent = forms("stop")
        with stopped(worker.pid):
            assert_answered_503(await post_all(client, sent))
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.headers["Retry-After"] == "5"
            assert "has not answered" in ready.json()["detail"]
        # The worker commits what waited in its socket; each retry is that commit's duplicate.
        await retry_when_ready(client, sent, "stop")


@pytest.mark.parametrize("ingest_worker", [False, True], ids=["in_process", "ingest_worker"])
async def test_a_held_write_lock_is_answered_for_with_503_and_retries_store_once(
    config: Config, ingest_worker: bool
) -> None:
    async with (
        served(config, ingest_worker=ingest_worker) as (_, base_url),
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        sent = forms("lock")
        other = sqlite3.connect(config.sqlite_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process's writer that does not finish
            assert_answered_503(await post_all(client, sent))
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
        finally:
            other.execute("ROLLBACK")
            other.close()
        await retry_when_ready(client, sent, "lock")


async def test_callbacks_for_a_stopped_worker_wait_in_a_bounded_buffer(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the socket to a stopped worker and `LINK_BUFFER_BYTES` are full, new callbacks
    are answered 503 at once, not kept in the receiver's memory."""
    monkeypatch.setattr("dlrhub.receiver.ingest_worker.LINK_BUFFER_BYTES", 1)
    async with (
        served(config, ingest_worker=True) as (app, base_url),
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        worker: IngestWorker = app.state.ingest_worker  # type: ignore[attr-defined]
        assert worker.pid is not None
        big = [event_form("delivered", message_id=f"big-{n}", note="x" * 16_000) for n in range(64)]
        with stopped(worker.pid):
            assert_answered_503(await post_all(client, big))  # 1 MiB: over the socket's buffer
            later = await post_all(client, forms("later"))
            assert_answered_503(later)
            details = {answer.json()["detail"] for answer in later}
            assert details == {"the ingest worker is not keeping up"}
            assert (await client.get("/readyz")).status_code == 503
        await eventually_async(lambda: _status(client, "/readyz", 200), 30)
