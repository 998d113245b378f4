"""Several `dlrhub poll` processes on one PostgreSQL database: what each must see.

Each poller runs as a real process with a data directory of its own, sharing
nothing but the database. The fake Onurix is served twice, on two ports, one per
poller, so that its log tells which process asked; a recorder around it keeps
when each query arrived and when it was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from dlrhub.config import Config, parse_config
from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.store.settings import open_store
from dlrhub.store.tracking import TrackingStore
from dlrhub.store.tracking_sql import open_tracking
from dlrhub.testing.progress import ManualClock
from tests.postgres import POSTGRES_DSN, backends, fresh_schema, terminate_backends
from tests.serving import serve_app
from tests.waiting import eventually_async

STATE = "/api/v1/messages-state"
MESSAGES = 1000
RATE = 50  # requests per second to the account, for both pollers together
ARRIVAL_SLACK = RATE // 4  # requests: what a 250 ms stall bunches together
FIRST_INTERVAL = 3.0  # seconds between two queries about a message

Scope = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]


@dataclass(frozen=True, slots=True)
class Query:
    message_id: str
    poller: str
    started: float  # time.monotonic() when it arrived
    answered: float


def recorded(app: App, poller: str, queries: list[Query]) -> App:
    """`app`, keeping a `Query` per status query it answers (which poller, when)."""

    async def recording(scope: Scope, receive: Any, send: Any) -> None:
        started = time.monotonic()
        await app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] == STATE:
            (message_id,) = parse_qs(scope["query_string"].decode())["id"]
            queries.append(Query(message_id, poller, started, time.monotonic()))

    return recording


def poller_config(directory: Path, base_url: str, fake: FakeOnurix, schema: str) -> Path:
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
shutdown_timeout = "5s"

[store]
backend = "postgres"
dsn = "{POSTGRES_DSN}"
schema = "{schema}"

[poller]
first_interval = "{FIRST_INTERVAL}s"
multiplier = 1
jitter = 0
batch_size = 25
idle_sleep = "50ms"

[[accounts]]
name = "onx"
provider = "onurix"
base_url = "{base_url}/api/v1"
client = "{fake.client}"
key = "{fake.key}"
rate_limit = {RATE}
concurrency = 8
""",
        encoding="utf-8",
    )
    return path


async def start_poller(config_path: Path, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dlrhub",
            "poll",
            "--config",
            str(config_path),
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
    await eventually_async(
        lambda: "started for account" in output(log) or process.returncode is not None,
        what="the poller to start",
    )
    assert process.returncode is None, output(log)
    return process


def output(log: Path) -> str:
    return log.read_text(errors="replace")


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


def tracking_config(
    tmp_path: Path, base_url: str, fake: FakeOnurix, schema: str, idle_sleep: str = "1s"
) -> Config:
    document = {
        "data_dir": str(tmp_path / "test-data"),
        "store": {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema},
        "accounts": [
            {
                "name": "onx",
                "provider": "onurix",
                "base_url": f"{base_url}/api/v1",
                **fake.account_settings(),
            }
        ],
        "poller": {"idle_sleep": idle_sleep},
    }
    return parse_config(document)


async def migrate(config: Config) -> None:
    """Make the schema in the empty database (the pollers only check it)."""
    store = open_store(config.store, config.data_dir)
    await store.open()
    await store.close()


async def track(config: Config, message_ids: list[str]) -> None:
    """Track the messages from this process, as `POST /v1/tracking` would."""
    store = open_store(config.store, config.data_dir)
    await store.open()
    tracking = open_tracking(config.store, config.data_dir)
    await tracking.open()
    outbound = Outbound(config, store, tracking)
    try:
        assert await outbound.track("onx", [TrackRequest(i) for i in message_ids]) == len(
            message_ids
        )
    finally:
        await outbound.aclose()
        await tracking.close()
        await store.close()


async def stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 60)


async def test_two_poller_processes_share_1000_messages_and_the_rate_limit(
    schema: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    fake = FakeOnurix(latency=0.02, progression=("Enviado", "Entregado"), step_seconds=1)
    fake.clock = clock
    ids = [fake.add_message(f"5731507{n:05d}").id for n in range(MESSAGES)]
    queries: list[Query] = []
    async with (
        serve_app(recorded(fake.app, "a", queries)) as base_a,
        serve_app(recorded(fake.app, "b", queries)) as base_b,
    ):
        await migrate(tracking_config(tmp_path, base_a, fake, schema))
        pollers = []
        try:
            for name, base_url in (("a", base_a), ("b", base_b)):
                directory = tmp_path / f"poller-{name}"
                directory.mkdir()
                config_path = poller_config(directory, base_url, fake, schema)
                pollers.append(await start_poller(config_path, directory / "poll.log"))
            await track(tracking_config(tmp_path, base_a, fake, schema), ids)

            # Every message answers "Enviado" until all were asked once, "Entregado" after.
            await eventually_async(
                lambda: all(fake.messages[i].queries >= 1 for i in ids),
                120,
                "every message to be asked about once",
            )
            clock.advance(2)

            def settled() -> bool:
                return all(message.answers[-1].final for message in fake.messages.values())

            await eventually_async(settled, 120, "every message to be asked until it is final")
        finally:
            codes = [await stop(process) for process in pollers]
    assert codes == [0, 0]

    logs = "".join(
        line
        for name in "ab"
        for line in output(tmp_path / f"poller-{name}" / "poll.log").splitlines(keepends=True)
        if " INFO " not in line
    )
    by_message: defaultdict[str, list[Query]] = defaultdict(list)
    for query in queries:
        by_message[query.message_id].append(query)
    # The schedule: ask until the answer is final, FIRST_INTERVAL apart, then never again.
    for message_id in ids:
        mine = sorted(by_message[message_id], key=lambda query: query.started)
        answers = fake.messages[message_id].answers
        assert len(mine) == len(answers) >= 2
        for earlier, later in itertools.pairwise(mine):
            assert earlier.answered <= later.started, (earlier, later, logs)  # never two at once
            assert later.started - earlier.answered >= FIRST_INTERVAL * 0.9, (earlier, later, logs)
        assert [answer.final for answer in answers] == [False] * (len(answers) - 1) + [True], (
            "\n".join(map(str, [*mine, *answers]))
        )
    assert len(queries) == sum(len(message.answers) for message in fake.messages.values())
    per_poller = Counter(query.poller for query in queries)
    assert per_poller["a"] > 0 and per_poller["b"] > 0, per_poller
    # The account's limit holds for both processes together, not for each (that would allow
    # 2 * RATE): any one-second window holds RATE request starts, one more when both its
    # ends land on one. These are arrival times at the fake, in this process: when it or a
    # poller stalls, requests sent on their turns arrive together (53 seen at RATE 50 with
    # other test runs on the 2 cores, 61 once in a whole CI run, never reproduced alone or
    # with both cores loaded). So the check is over two-second windows, where a stall of
    # up to ARRIVAL_SLACK / RATE seconds fits and a limit per process (200) still fails.
    dense = fake.max_requests_per_second(STATE, window=2.0)
    assert dense <= 2 * RATE + 1 + ARRIVAL_SLACK, (dense, fake.max_requests_per_second(STATE))
    arrivals = sorted(request.at for request in fake.requests_to(STATE))
    assert len(arrivals) - 1 <= RATE * (arrivals[-1] - arrivals[0]) + 1 + ARRIVAL_SLACK


@dataclass
class IdlePoller:
    """A poller idle for 60 s after polling `first`; `second` is not tracked yet."""

    config: Config
    poller: Poller
    first: str
    second: str

    async def wakes_for_the_second(self) -> None:
        await track(self.config, [self.second])  # the poller waits for its 60 s idle_sleep
        await eventually_async(
            lambda: _attempts(self.poller.tracking, self.second),
            30,
            "the poller to wake and poll it",
        )


@contextlib.asynccontextmanager
async def idle_poller(schema: str, tmp_path: Path) -> AsyncIterator[IdlePoller]:
    fake = FakeOnurix(progression=("Entregado",))
    async with serve_app(fake.app) as base:
        config = tracking_config(tmp_path, base, fake, schema, idle_sleep="60s")
        await migrate(config)
        first, second = fake.add_message("573150900001").id, fake.add_message("573150900002").id
        await track(config, [first])
        store = open_store(config.store, config.data_dir)
        await store.open()
        poller = Poller(config, store)
        await poller.start()
        try:
            tracking = poller.tracking
            await eventually_async(lambda: _attempts(tracking, first), what="the first poll")
            yield IdlePoller(config, poller, first, second)
        finally:
            await poller.stop()
            await store.close()


async def test_a_waiting_poller_wakes_when_messages_are_tracked(
    schema: str, tmp_path: Path
) -> None:
    """NOTIFY on PostgreSQL: a poller idle for 60 s asks about a new message at once."""
    async with idle_poller(schema, tmp_path) as idle:
        await idle.wakes_for_the_second()


async def test_a_poller_listens_again_after_its_listen_connection_is_cut(
    schema: str, tmp_path: Path
) -> None:
    """The LISTEN connection is reopened: after it was terminated, a new message still
    wakes a poller idle for 60 s."""
    async with idle_poller(schema, tmp_path) as idle:
        wakeups = idle.poller.tracking.wakeups  # type: ignore[attr-defined]
        await eventually_async(lambda: wakeups.notifications.listening, what="LISTEN")
        cut = await terminate_backends("dlrhub-listen")
        assert cut, "no LISTEN connection to cut"

        async def listening_anew() -> bool:
            now = await backends("dlrhub-listen")
            return wakeups.notifications.listening and bool(set(now) - set(cut))

        await eventually_async(listening_anew, 30, "the poller to LISTEN again")
        await idle.wakes_for_the_second()


async def _attempts(tracking: TrackingStore, message_id: str) -> int:
    row = await tracking.find("onx", message_id)
    return row.attempts if row is not None else 0
