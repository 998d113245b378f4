"""Every role as several processes on one PostgreSQL, while processes die and are cut off.

Two receivers (`dlrhub serve --no-sinks`), two sink workers and two pollers
(`dlrhub poll`, following 200 messages at a fake Onurix), each in its own data
directory, share nothing but the database. 3,000 360NRS callbacks go to
the receivers, a tenth of them twice (a provider's retry, to the other
receiver), and whatever a receiver does not answer 200 is retried on the other
one, as a provider would. Meanwhile one receiver and one worker are SIGKILLed,
and the other worker is cut off from PostgreSQL by a proxy that stops passing
bytes (a network partition: its queries hang, they do not fail).

What must hold: every callback answered 200 is stored once; every stored event
reaches the webhook sink and the Redis sink at least once, in per-message
order; the cut-off worker delivers nothing after its lease deadline; the two
sinks start on different workers; both pollers poll and every tracked message
ends delivered; duplicates are counted and reported. (How pollers share one
message and the rate limit is shown apart: tests/outbound/test_pollers_postgres.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.providers.onurix.fake import FakeOnurix
from tests.conftest import SOURCE_TOKEN, write_config
from tests.outbound.test_pollers_postgres import (
    output,
    poller_config,
    start_poller,
    stop,
    track,
    tracking_config,
)
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.processes import (
    ServerProcess,
    dlrhub_argv,
    dlrhub_serve,
    environment_without_dlrhub,
    prints,
    run_dlrhub,
)
from tests.serving import serve_app
from tests.sinks.conftest import SECRET, assert_per_message_order, require_tcp
from tests.waiting import eventually_async

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2.0
CALLBACKS = 3000
STEPS = ("sent", "delivered", "opened", "clicked", "unsubscribed")
SENDERS = 12
RETRIED_SHARE = 0.1
TRACKED = 200


@dataclass
class Hook:
    """The webhook sink's endpoint: which worker (`?worker=`) delivered what, and when."""

    arrivals: list[tuple[float, str, list[dict[str, Any]]]] = field(default_factory=list)
    base_url: str = ""
    delay: float = 0.0  # seconds before each answer: a slow endpoint keeps a page in flight

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            arrived = time.monotonic()  # when the worker sent it, give or take loopback
            payload = orjson.loads(await request.body())
            items = payload.get("events", [payload])
            await asyncio.sleep(self.delay)
            self.arrivals.append((arrived, request.query_params["worker"], items))
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    @property
    def events(self) -> list[dict[str, Any]]:
        return [item for _, _, items in self.arrivals for item in items]

    def last_arrival_from(self, worker: str) -> float:
        return max((at for at, tag, _ in self.arrivals if tag == worker), default=0.0)


class StallingProxy:
    """A TCP proxy in front of PostgreSQL that the test can partition: bytes stop flowing
    both ways and connections stay open, so the client's queries hang (a cut cable), then
    flow again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    await self.flowing.wait()  # a partition holds the bytes back
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def partition(self) -> None:
        self.flowing.clear()

    def heal(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    endpoint = Hook()
    async with serve_app(endpoint.app(), timeout_graceful_shutdown=1) as base_url:
        endpoint.base_url = base_url
        yield endpoint


def role_config(
    directory: Path, *, dsn: str, schema: str, hook: Hook, worker: str, stream: str
) -> Path:
    return write_config(
        directory,
        f"""
[store]
backend = "postgres"
dsn = "{dsn}"
schema = "{schema}"

[server]
access_log = false

[worker]
lease = "{LEASE_SECONDS:g}s"

[[sinks]]
name = "hook"
kind = "webhook"
url = "{hook.base_url}/hook?worker={worker}"
allow_private = true
secret = "{SECRET}"
batch_size = 10
max_in_flight = 1
retry = {{ initial = "50ms", max = "500ms" }}

[[sinks]]
name = "streams"
kind = "redis"
url = "redis://127.0.0.1:6379/0"
stream = "{stream}"
batch_size = 50
retry = {{ initial = "50ms", max = "500ms" }}
""",
    )


@contextlib.asynccontextmanager
async def worker_process(config: Path, name: str) -> AsyncIterator[ServerProcess]:
    worker = ServerProcess(
        dlrhub_argv("worker", "--config", str(config)),
        config.parent / f"{name}.log",
        prints("dlrhub worker: delivering"),
        env=environment_without_dlrhub(),
    )
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


def callbacks(run: str) -> list[dict[str, str]]:
    """CALLBACKS event notifications: each message climbs STEPS, messages interleaved."""
    forms = []
    messages = CALLBACKS // len(STEPS)
    for step, name in enumerate(STEPS):
        for message in range(messages):
            forms.append(
                {
                    "id": f"{run}-{message:04d}",
                    "event": name,
                    "channel": "email",
                    "eventDate": f"2026-12-02 10:{step:02d}:00",
                }
            )
    return forms


@dataclass
class Provider:
    """Posts callbacks to the receivers the way 360NRS does: a failure is retried elsewhere."""

    receivers: list[str]
    answered: set[str] = field(default_factory=set)  # "id/event" answered 200
    retried: int = 0
    sent_twice: int = 0

    async def post(self, client: httpx.AsyncClient, form: dict[str, str], first: int) -> None:
        key = f"{form['id']}/{form['event']}"
        body = urlencode(form)
        for attempt in range(40):
            base = self.receivers[(first + attempt) % len(self.receivers)]
            try:
                answer = await client.post(
                    f"{base}/hooks/nrs360/events",
                    params={"token": SOURCE_TOKEN},
                    content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code == 200:
                self.answered.add(key)
                return
            self.retried += 1
            await asyncio.sleep(0.05)
        raise AssertionError(f"no receiver took {key}")

    async def send(self, client: httpx.AsyncClient, forms: list[dict[str, str]]) -> None:
        queue: asyncio.Queue[tuple[int, dict[str, str]]] = asyncio.Queue()
        for index, form in enumerate(forms):
            queue.put_nowait((index, form))

        async def sender() -> None:
            while not queue.empty():
                index, form = queue.get_nowait()
                await self.post(client, form, index)
                if random.random() < RETRIED_SHARE:  # the provider did not see our 200
                    self.sent_twice += 1
                    await self.post(client, form, index + 1)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def stored_keys(schema: str) -> Counter[str]:
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        rows = await connection.fetch(f"SELECT doc FROM {schema}.events")  # noqa: S608
    finally:
        await connection.close()
    keys: Counter[str] = Counter()
    for row in rows:
        event = orjson.loads(row["doc"])
        if event["provider"] == "nrs360":  # the pollers' Onurix events are counted apart
            keys[f"{event['message_id']}/{event['provider_status']}"] += 1
    return keys


async def delivered_by_polling(schema: str) -> int:
    """Tracked messages whose poll said delivered."""
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        count = await connection.fetchval(
            f"SELECT count(*) FROM {schema}.messages"  # noqa: S608
            " WHERE provider = 'onurix' AND status = 'delivered'"
        )
    finally:
        await connection.close()
    return int(count)


async def lease_owners(schema: str) -> dict[str, str]:
    connection = await asyncpg.connect(POSTGRES_DSN)
    try:
        rows = await connection.fetch(f"SELECT sink, owner FROM {schema}.sink_leases")  # noqa: S608
    finally:
        await connection.close()
    return {row["sink"]: row["owner"] for row in rows}


async def read_stream(name: str) -> list[dict[str, Any]]:
    client = Redis(port=6379)
    entries: list[dict[str, Any]] = []
    try:
        last = "-"
        while batch := await client.xrange(name, min=last, count=1000):
            if last != "-":
                batch = batch[1:]
            if not batch:
                break
            entries += [orjson.loads(fields[b"event"]) for _, fields in batch]
            last = batch[-1][0].decode()
    finally:
        await client.aclose()
    return entries


async def test_every_role_scales_out_and_survives_kills_and_a_partition(
    tmp_path: Path, hook: Hook
) -> None:
    require_tcp(6379, "Redis", "redis-server --port 6379 --daemonize yes")
    run = uuid.uuid4().hex[:8]
    stream = f"dlrhub-scale-{run}"
    proxy = StallingProxy(5432)
    await proxy.start()
    proxied_dsn = POSTGRES_DSN.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    forms = callbacks(run)
    async with fresh_schema() as schema, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(proxy.close)

        def config(name: str, worker: str = "-", dsn: str = POSTGRES_DSN) -> Path:
            return role_config(
                tmp_path / name, dsn=dsn, schema=schema, hook=hook, worker=worker, stream=stream
            )

        migrated = await run_dlrhub("migrate", "--config", str(config("migrate")), cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        receivers = [
            await stack.enter_async_context(
                dlrhub_serve("--no-sinks", "--config", str(config(name)), log_dir=tmp_path)
            )
            for name in ("receiver-1", "receiver-2")
        ]
        # Each message is delivered 10 s after it was sent: polled through the kills.
        fake = FakeOnurix(progression=("Pendiente", "Enviado", "Entregado"), step_seconds=5.0)
        base = await stack.enter_async_context(serve_app(fake.app, timeout_graceful_shutdown=1))
        pollers = []
        for name in ("poller-1", "poller-2"):
            (tmp_path / name).mkdir()
            path = poller_config(tmp_path / name, base, fake, schema)
            pollers.append((await start_poller(path, tmp_path / f"{name}.log"), name))
        for process, _ in pollers:
            stack.push_async_callback(stop, process)
        tracked = [fake.add_message(f"5731509{n:05d}").id for n in range(TRACKED)]
        await track(tracking_config(tmp_path, base, fake, schema), tracked)
        worker_a = await stack.enter_async_context(worker_process(config("worker-a", "a"), "a"))
        worker_b = await stack.enter_async_context(
            worker_process(config("worker-b", "b", proxied_dsn), "b")
        )
        provider = Provider([receiver.base_url for receiver in receivers])
        async with httpx.AsyncClient(timeout=10) as client:
            # 1. Both receivers take callbacks; the two sinks spread over the two workers.
            await provider.send(client, forms[:1000])
            await eventually_async(
                lambda: _spread(lease_owners(schema)), 3 * LEASE_SECONDS, "sinks to spread"
            )
            # 2. A receiver dies mid-stream; the provider retries on the other one.
            sending = asyncio.create_task(provider.send(client, forms[1000:2000]))
            await eventually_async(lambda: len(provider.answered) >= 1300, 60)
            receivers[0].process.send_signal(signal.SIGKILL)
            await sending
            # 3. A worker dies; the other takes its sink over and delivers everything so far.
            killed_at = time.monotonic()
            await worker_a.kill()
            await eventually_async(
                lambda: _all_held_by_one(lease_owners(schema)),
                LEASE_SECONDS * 2 + 1,  # expiry, then the survivor's next round
                "the surviving worker to take the dead one's sink",
            )
            took_over = time.monotonic() - killed_at
            await provider.send(client, forms[2000:2500])
            answered = set(provider.answered)
            await eventually_async(
                lambda: _everywhere(hook, stream, answered),
                30,
                "the surviving worker to deliver both sinks",
            )
            # 4. The surviving worker is partitioned from the database while a slow
            # endpoint keeps a page in flight: it stops delivering at its lease
            # deadline, at the latest one lease after the cut.
            hook.delay = 0.2  # a page of 200 events in batches of 10: 4 s, two leases
            await provider.send(client, forms[2500:])
            before = len(hook.arrivals)
            await eventually_async(lambda: len(hook.arrivals) > before + 1, 30)
            proxy.partition()
            cut_at = time.monotonic()
            await asyncio.sleep(LEASE_SECONDS * 2)
            after_cut = sum(1 for at, tag, _ in hook.arrivals if tag == "b" and at > cut_at)
            hook.delay = 0.0
            last_from_b = hook.last_arrival_from("b") - cut_at
            # Its local deadline is one lease after its last renewal was sent, before the cut.
            assert last_from_b <= LEASE_SECONDS + 0.25, "the cut-off worker went on delivering"
            # 5. A new worker takes over; the partition heals; everything arrives.
            await stack.enter_async_context(worker_process(config("worker-c", "c"), "c"))
            proxy.heal()
            answered = set(provider.answered)
            await eventually_async(
                lambda: _everywhere(hook, stream, answered),
                60,
                "every stored callback at both sinks",
            )
        assert worker_b.process.returncode is None or worker_b.process.returncode == 0
        await eventually_async(
            lambda: _all_delivered(schema), 60, "every tracked message to be delivered"
        )
        polls = {}
        for process, name in pollers:  # both took part, and are still up
            log = output(tmp_path / f"{name}.log")
            polls[name] = log.count("poll of account onx")
            assert process.returncode is None and polls[name], log
        keys = await stored_keys(schema)
        assert set(provider.answered) <= set(keys)
        assert max(keys.values()) == 1, "a callback was stored twice"
        assert len(keys) == CALLBACKS
        delivered = hook.events
        streamed = await read_stream(stream)
        assert_per_message_order(delivered)
        assert_per_message_order(streamed)
        duplicates = {
            "webhook": len(delivered) - len({event["id"] for event in delivered}),
            "redis": len(streamed) - len({event["id"] for event in streamed}),
        }
        print(
            f"\n{len(keys)} callbacks stored once ({provider.sent_twice} sent twice,"
            f" {provider.retried} retried after a failure); duplicates delivered: {duplicates};"
            f" takeover after SIGKILL {took_over:.2f}s; the cut-off worker's last delivery"
            f" {last_from_b:.2f}s after the cut (lease {LEASE_SECONDS:g}s), {after_cut}"
            f" batch(es) delivered between the cut and then; {TRACKED} tracked messages"
            f" delivered, status requests per poller: {polls}"
        )
        client_redis = Redis(port=6379)
        await client_redis.delete(stream)
        await client_redis.aclose()


async def _all_delivered(schema: str) -> bool:
    return await delivered_by_polling(schema) == TRACKED


async def _all_held_by_one(owners: Any) -> bool:
    found = await owners
    return len(found) == 2 and len(set(found.values())) == 1


async def _spread(owners: Any) -> bool:
    found = await owners
    return len(found) == 2 and len(set(found.values())) == 2


def _keys_of(events: list[dict[str, Any]]) -> set[str]:
    return {
        f"{event['message_id']}/{event['provider_status']}"
        for event in events
        if event["provider"] == "nrs360"
    }


async def _everywhere(hook: Hook, stream: str, answered: set[str]) -> bool:
    """Every answered callback at the webhook and, then, in the Redis stream."""
    if not answered <= _keys_of(hook.events):
        return False
    await asyncio.sleep(0.2)  # reading the stream is not free: not every 20 ms
    return answered <= _keys_of(await read_stream(stream))
