"""Slow and idle clients: a body has `server.body_timeout` to arrive (else 408, connection
closed); `server.limit_concurrency` bounds the connections; held bodies and open files
stay bounded while other callbacks are answered.

The 500-connection test runs `dlrhub serve` as a subprocess and reads its memory and
open files from /proc. Every connection goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.payloads import FORM, event_form
from tests.processes import dlrhub_serve
from tests.serving import serve_app
from tests.waiting import eventually_async

HOOK = f"/hooks/nrs360/events?token={SOURCE_TOKEN}"


@dataclass
class SlowClient:
    """A connection that sent the headers and part of a callback's body, then stalls."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int, declared: int, sent: int) -> SlowClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {FORM['Content-Type']}\r\nContent-Length: {declared}\r\n\r\n"
        )
        writer.write(head.encode() + b"x" * sent)
        await writer.drain()
        return cls(reader, writer)

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body the server answered, read until it closed."""
        data = await self.reader.read()  # to EOF: the server must close the connection
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def slow_clients(
    port: int, count: int, declared: int, sent: int
) -> AsyncIterator[list[SlowClient]]:
    clients: list[SlowClient] = []
    try:
        for _ in range(count):
            clients.append(await SlowClient.open(port, declared, sent))
        yield clients
    finally:
        await asyncio.gather(*(client.close() for client in clients))


def app_config(tmp_path: Path, server: str) -> Config:
    return load_config(write_config(tmp_path, extra=f"[server]\n{server}\n"), env={})


async def stored_events(base_url: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as admin:
        answer = await admin.get("/v1/events", params={"limit": 1000})
        events: list[dict[str, object]] = answer.json()["events"]
        return events


async def post_callback(client: httpx.AsyncClient, message_id: str) -> httpx.Response:
    return await client.post(
        "/hooks/nrs360/events",
        params={"token": SOURCE_TOKEN},
        headers=FORM,
        content=event_form("delivered", message_id=message_id),
    )


async def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_closed(
    tmp_path: Path,
) -> None:
    config = app_config(tmp_path, "body_timeout = 0.5")
    async with serve_app(create_app(config)) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        async with slow_clients(port, 1, declared=200, sent=20) as (slow,):
            status, headers, body = await asyncio.wait_for(slow.answer(), 30)
        assert status == 408
        assert headers["connection"] == "close"
        assert orjson.loads(body)["error"] == "request_timeout"
        async with httpx.AsyncClient(base_url=base_url) as client:
            assert (await post_callback(client, "after")).status_code == 200
        assert [event["message_id"] for event in await stored_events(base_url)] == ["after"]


async def test_connections_over_limit_concurrency_are_answered_503_and_logged_once(
    tmp_path: Path,
) -> None:
    config_path = write_config(
        tmp_path,
        extra="[server]\nlimit_concurrency = 4\nbody_timeout = 60\ningest_worker = false\n",
    )
    async with dlrhub_serve("--config", str(config_path), log_dir=tmp_path, cwd=tmp_path) as server:
        async with slow_clients(server.port, 4, declared=200, sent=20):
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                refused = [await post_callback(client, f"over-{n}") for n in range(50)]
            assert {answer.status_code for answer in refused} == {503}
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await post_callback(client, "under")).status_code == 200
        await server.stop()
    # Uvicorn logs this line per refused request; dlrhub lets one through per interval.
    lines = [line for line in server.output().splitlines() if "Exceeded concurrency" in line]
    assert len(lines) == 1, lines
    assert "(1 time; repeats are counted" in lines[0]


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


SLOW_CLIENTS = 500
DECLARED = 60_000  # under max_body_bytes (64 KiB), so each is read and held in full
SENT = 50_000


@pytest.mark.slow
async def test_500_slow_clients_hold_bounded_memory_and_files_and_others_are_answered(
    tmp_path: Path,
) -> None:
    """Defaults but `body_timeout`: 500 connections each hold 50 kB of a body that never
    ends. The receiver's memory grows by at most what the held bodies account for, its open
    files by one per connection; a normal callback is answered 200 meanwhile; every slow one
    is answered 408 and closed, and the files are given back."""
    config_path = write_config(tmp_path, extra="[server]\nbody_timeout = 4\n")
    async with dlrhub_serve("--config", str(config_path), log_dir=tmp_path, cwd=tmp_path) as server:
        pid = server.process.pid
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            assert (await post_callback(client, "before")).status_code == 200
        files_before, memory_before = open_files(pid), resident_bytes(pid)

        async with slow_clients(server.port, SLOW_CLIENTS, DECLARED, SENT) as held:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                answer = await post_callback(client, "during")
            assert answer.status_code == 200, answer.text
            files_held, memory_held = open_files(pid), resident_bytes(pid)
            answers = await asyncio.wait_for(
                asyncio.gather(*(client.answer() for client in held)), 60
            )
        assert {status for status, _, _ in answers} == {408}
        await eventually_async(lambda: open_files(pid) <= files_before + 2, 30)
        message_ids = {event["message_id"] for event in await stored_events(server.base_url)}
        assert message_ids == {"before", "during"}

    assert files_held <= files_before + SLOW_CLIENTS + 2
    grown = memory_held - memory_before
    # Bounded by what is held: each connection's body so far plus per-connection state.
    assert grown < SLOW_CLIENTS * (SENT + 64 * 1024), f"{grown / 1e6:.0f} MB"
