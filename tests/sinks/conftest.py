"""Helpers for the sink tests: events straight into a real store (SQLite, or PostgreSQL
with the `store_toml` fixture), a webhook receiver served by Uvicorn, brokers on
loopback and a TCP proxy to cut them off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.config import Config, load_config
from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.sinks.engine import SinkRunner
from dlrhub.sinks.service import SinkService, open_sink_state
from dlrhub.store import Accept, Store
from dlrhub.store.settings import open_store
from dlrhub.store.sink_state import SinkStateStore
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.processes import ServerProcess, accepts_tcp, running_on_free_port
from tests.serving import serve_app
from tests.waiting import eventually_async

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STATUSES = (Status.ACCEPTED, Status.SENT, Status.DELIVERED)


def make_events(count: int, *, messages: int = 50, start: int = 0) -> list[Event]:
    """`count` events over `messages` messages; each message's statuses climb the lattice."""
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    events = []
    for index in range(start, start + count):
        message = index % messages
        step = index // messages
        events.append(
            Event(
                id=f"evt-{run}-{index:06d}",
                source="nrs360" if message % 5 else "office",
                provider="nrs360",
                type=EventType.MESSAGE_STATUS,
                received_at=now,
                message_id=f"msg-{run}-{message:04d}",
                status=STATUSES[min(step, len(STATUSES) - 1)],
                provider_status=str(step),
                extra={"step": step},
            )
        )
    return events


async def ingest(store: Store, events: Sequence[Event], per_callback: int = 50) -> None:
    """Store events the way the receiver does (one Accept per callback), concurrently."""
    writes = []
    for start in range(0, len(events), per_callback):
        chunk = list(events[start : start + per_callback])
        raw = RawCallback(
            source=chunk[0].source,
            provider="nrs360",
            kind="events",
            method="POST",
            query="",
            content_type="application/json",
            body=f"{chunk[0].id}:{len(chunk)}".encode(),
            received_at=datetime.now(UTC),
        )
        writes.append(store.write(Accept(raw, chunk)))
    await asyncio.gather(*writes)


def sink_config(tmp_path: Path, sinks: str, extra: str = "", store: str = "") -> Config:
    """A configuration with `sinks`; `store` is a `[store]` table (see `store_toml`)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "dlrhub.toml"
    text = f'data_dir = "{tmp_path / "data"}"\n{extra}\n{sinks}\n{store}'
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


def postgres_toml(schema: str, dsn: str = POSTGRES_DSN, extra: str = "") -> str:
    return f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n{extra}'


@pytest.fixture(params=["sqlite", "postgres"])
async def store_toml(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The `[store]` table of a test that runs on both backends (empty: SQLite)."""
    if request.param == "sqlite":
        yield ""
        return
    async with fresh_schema() as schema:
        yield postgres_toml(schema)


@dataclass
class Harness:
    config: Config
    store: Store
    state: SinkStateStore

    @contextlib.asynccontextmanager
    async def service(self) -> AsyncIterator[SinkService]:
        service = SinkService(self.config, poll_interval=0.01, control_interval=0.05)
        await service.start()
        try:
            yield service
        finally:
            await service.stop()


@contextlib.asynccontextmanager
async def harness(config: Config) -> AsyncIterator[Harness]:
    store = open_store(config.store, config.data_dir)
    state = open_sink_state(config)
    await store.open()
    await state.open()
    try:
        yield Harness(config, store, state)
    finally:
        await state.close()
        await store.close()


def assert_per_message_order(received: Sequence[Event | dict[str, Any]]) -> None:
    """Within each message, events arrive in increasing seq (first arrivals only)."""
    last: dict[str, int] = {}
    seen: set[str] = set()
    for item in received:
        data = item.to_dict() if isinstance(item, Event) else item
        if data["id"] in seen:
            continue
        seen.add(data["id"])
        key = str(data["message_id"])
        assert data["seq"] > last.get(key, 0), f"{data['id']} arrived out of order"
        last[key] = int(data["seq"])


async def deliveries_tried(runner: SinkRunner, count: int, seconds: float = 30.0) -> None:
    """Wait until `runner` has called its sink `count` more times: proof that it retried
    (e.g. against a broker that is down) rather than a guess of how long that takes."""
    tried = 0
    deliver = runner.sink.deliver

    async def counted(batch: Sequence[Event]) -> None:
        nonlocal tried
        tried += 1
        await deliver(batch)

    runner.sink.deliver = counted  # type: ignore[method-assign]
    try:
        what = f"{count} delivery attempts by sink {runner.name}"
        await eventually_async(lambda: tried >= count, seconds, what)
    finally:
        runner.sink.deliver = deliver  # type: ignore[method-assign]


# Webhook receiver -----------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook endpoint whose answers the test steers with `mode`."""

    # ok, slow, fail (500), echo (500 repeating the request's credentials), hang,
    # gone (410), throttle (429)
    mode: str = "ok"
    reject_ids: set[str] = field(default_factory=set)  # answer 400 for these event ids
    retry_after: str = "1"
    hang_seconds: float = 30.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, status)
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted ones, in order
    base_url: str = ""

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            import orjson

            body = await request.body()
            self.requests.append((dict(request.headers), body))
            payload = orjson.loads(body)
            items = payload.get("events", [payload])
            status = 200
            if self.mode == "fail":
                status = 500
            elif self.mode == "hang":
                await asyncio.sleep(self.hang_seconds)
                status = 500
            elif self.mode == "slow":
                await asyncio.sleep(self.hang_seconds)
            elif self.mode == "gone":
                status = 410
            elif self.mode == "echo":  # a careless endpoint: the error names what it got
                self.answered.append((time.monotonic(), 500))
                shown = f"bad {request.headers.get('authorization')} for ?{request.url.query}"
                return Response(shown, 500)
            elif self.mode == "throttle":
                self.answered.append((time.monotonic(), 429))
                return JSONResponse(
                    {"error": "slow down"}, 429, headers={"Retry-After": self.retry_after}
                )
            elif any(item["id"] in self.reject_ids for item in items):
                status = 400
            self.answered.append((time.monotonic(), status))
            if status == 200:
                self.events.extend(items)
            return JSONResponse({"ok": status == 200}, status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    @property
    def ids(self) -> set[str]:
        return {item["id"] for item in self.events}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    async with serve_app(hook.app(), timeout_graceful_shutdown=1) as base_url:
        hook.base_url = base_url
        yield hook


# Brokers ------------------------------------------------------------------------


def require_tcp(port: int, what: str, how: str) -> None:
    """Fail (never skip) when a shared service the test needs is not listening."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError:
        pytest.fail(f"{what} is not listening on 127.0.0.1:{port}; start it: {how}")


def require_binary(name: str, how: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        pytest.fail(f"{name} is not installed; {how}")
    return path


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A Redis the test starts on a free port, so it can kill and restart it."""
    binary = require_binary("redis-server", "install it: apt-get install redis-server")

    def redis(port: int) -> ServerProcess:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "yes", "--appendfsync", "always", "--dir", str(tmp_path)]  # fmt: skip
        return ServerProcess(argv, tmp_path / "redis.log", accepts_tcp, port)

    async with running_on_free_port(redis, grace=0) as server:
        yield server


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A NATS JetStream the test starts on a free port, so it can kill and restart it."""
    binary = require_binary("nats-server", "install it: apt-get install nats-server")
    store_dir = tmp_path / "jetstream"

    def nats(port: int) -> ServerProcess:
        argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)]
        return ServerProcess(argv, tmp_path / "nats.log", accepts_tcp, port)

    async with running_on_free_port(nats, grace=0) as server:
        yield server


class Proxy:
    """A loopback TCP proxy the test can cut (drop every connection, refuse new ones) or
    freeze (connections stay open, nothing passes)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.open = True
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    if self.frozen:
                        continue  # swallowed: a network that drops packets, not connections
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def freeze(self) -> None:
        """Keep every connection open but pass nothing: requests wait for an answer."""
        self.frozen = True

    def restore(self) -> None:
        self.open = True
        self.frozen = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
