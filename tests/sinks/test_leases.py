"""Several sink workers on one PostgreSQL database: leases, fencing, takeover.

Each worker is a `SinkService` with a data directory of its own (nothing shared
but the database) and a 2 s lease; the sinks record which worker delivered what,
and when (the event loop's monotonic clock, the one the lease deadlines use).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import orjson
import pytest

from dlrhub.config import Config
from dlrhub.event import Event
from dlrhub.sinks.base import Sink
from dlrhub.sinks.service import SinkService
from dlrhub.sinks.settings import SinkConfig
from dlrhub.store.sink_state_sql import SQLSinkState
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.processes import ServerProcess, dlrhub_argv, environment_without_dlrhub, prints
from tests.serving import serve_app
from tests.sinks.conftest import (
    SECRET,
    Harness,
    Proxy,
    Receiver,
    assert_per_message_order,
    harness,
    ingest,
    make_events,
    postgres_toml,
    sink_config,
)
from tests.waiting import eventually_async

SINKS = """
[worker]
lease = "2s"

[[sinks]]
name = "one"
kind = "stdout"
batch_size = 10

[[sinks]]
name = "two"
kind = "stdout"
batch_size = 10
"""


@dataclasses.dataclass
class Delivery:
    sink: str
    worker: str
    at: float  # loop time the attempt started
    events: list[Event]


@dataclasses.dataclass
class Recorder:
    """What every worker's sinks delivered, in the order the attempts started."""

    seconds_per_batch: float = 0.0
    deliveries: list[Delivery] = dataclasses.field(default_factory=list)

    def factory(self, worker: str) -> Callable[[SinkConfig], Sink]:
        return lambda config: RecordingSink(self, config.name, worker)

    def received(self, sink: str) -> list[Event]:
        return [event for d in self.deliveries if d.sink == sink for event in d.events]

    def ids(self, sink: str) -> set[str]:
        return {event.id for event in self.received(sink)}


@dataclasses.dataclass
class RecordingSink:
    recorder: Recorder
    name: str
    worker: str

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Event]) -> None:
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(self.recorder.seconds_per_batch)
        self.recorder.deliveries.append(Delivery(self.name, self.worker, started, list(batch)))


def worker_config(tmp_path: Path, name: str, schema: str, dsn: str = POSTGRES_DSN) -> Config:
    return sink_config(tmp_path / name, SINKS, store=postgres_toml(schema, dsn))


@contextlib.asynccontextmanager
async def running(config: Config, recorder: Recorder, worker: str) -> AsyncIterator[SinkService]:
    create = recorder.factory(worker)
    service = SinkService(config, create=create, poll_interval=0.01, control_interval=0.05)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def held(service: SinkService) -> set[str]:
    assert service.keeper is not None
    return set(service.keeper.held)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
        yield name


async def test_two_workers_take_one_sink_each_and_hand_over_on_stop(
    tmp_path: Path, schema: str
) -> None:
    recorder = Recorder()
    first, second = (worker_config(tmp_path, name, schema) for name in ("a", "b"))
    events = make_events(400, messages=20)
    async with harness(first) as h, running(first, recorder, "a") as a:
        await ingest(h.store, events[:200])
        assert held(a) == {"one", "two"}  # alone: every sink
        async with running(second, recorder, "b") as b:
            await eventually_async(lambda: len(held(a)) == len(held(b)) == 1, 10, "one sink each")
            owners = {state.sink: state.lease_owner for state in await h.state.states()}
            assert owners["one"] != owners["two"]
            assert a.keeper is not None and b.keeper is not None
            assert set(owners.values()) == {a.keeper.owner, b.keeper.owner}
            await ingest(h.store, events[200:])
            for sink in ("one", "two"):
                await eventually_async(lambda s=sink: len(recorder.ids(s)) == 400, 20)  # type: ignore[misc]

            # Stopping (what SIGTERM does) releases the lease at once: b takes the sink
            # over before a's lease would have expired.
            (given_up,) = held(a)
            before = await lease_row(h, given_up)
            await a.stop()
            await eventually_async(lambda: held(b) == {"one", "two"}, 10, "b takes a's sink")
            after = await lease_row(h, given_up)
            lease_us = 2_000_000
            assert after["owner"] == b.keeper.owner
            assert after["token"] == before["token"] + 1
            assert after["expires_us"] - lease_us < before["expires_us"]
    for sink in ("one", "two"):
        assert recorder.ids(sink) == {event.id for event in events}
        assert_per_message_order(recorder.received(sink))


async def lease_row(h: Harness, sink: str) -> dict[str, int | str]:
    state = h.state
    assert isinstance(state, SQLSinkState)
    ((owner, token, expires),) = await state.database.read(
        "SELECT owner, token, expires_us FROM sink_leases WHERE sink = ?", (sink,)
    )
    return {"owner": owner, "token": int(token), "expires_us": int(expires)}


@pytest.mark.parametrize("outage", ["cut", "freeze"])
async def test_a_worker_cut_off_from_the_database_stops_at_its_lease_deadline(
    tmp_path: Path, schema: str, outage: str
) -> None:
    """`cut`: connections fail at once; `freeze`: the renewal never comes back."""
    proxy = Proxy(5432)
    await proxy.start()
    recorder = Recorder(seconds_per_batch=0.1)  # a page of 200 takes 2 s: longer than the lease
    cut_off = worker_config(
        tmp_path, "a", schema, f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    )
    other = worker_config(tmp_path, "b", schema)
    events = make_events(1000, messages=25)
    try:
        async with harness(other) as h, running(cut_off, recorder, "a") as a:
            await ingest(h.store, events)
            async with running(other, recorder, "b") as b:
                await eventually_async(lambda: len(held(a)) == len(held(b)) == 1, 10)
                (sink,) = held(a)
                await eventually_async(
                    lambda: any(d.worker == "a" and d.sink == sink for d in recorder.deliveries)
                )
                proxy.cut() if outage == "cut" else proxy.freeze()
                cut_at = asyncio.get_running_loop().time()
                assert a.keeper is not None
                await eventually_async(lambda: sink in a.keeper.deadlines_passed, 10)
                await eventually_async(lambda: held(b) == {"one", "two"}, 15, "b takes over")
                for name in ("one", "two"):
                    await eventually_async(
                        lambda s=name: len(recorder.ids(s)) == 1000,  # type: ignore[misc]
                        60,
                    )
                deadline = a.keeper.deadlines_passed[sink]
                by_a = [d.at for d in recorder.deliveries if d.worker == "a" and d.sink == sink]
                assert max(by_a) < deadline  # nothing from a after its deadline
                taken = [
                    d.at
                    for d in recorder.deliveries
                    if d.worker == "b" and d.sink == sink and d.at > cut_at
                ]
                print(
                    f"a stopped {deadline - cut_at:.2f}s after the cut, having started"
                    f" {sum(1 for t in by_a if t > cut_at)} deliveries since;"
                    f" b took over {min(taken) - deadline:.2f}s after a's deadline"
                )
                assert min(taken) > deadline
                proxy.cut()  # a frozen connection would hold a's stop up until TCP gives up
    finally:
        await proxy.close()
    for name in ("one", "two"):
        assert recorder.ids(name) == {event.id for event in events}
        assert_per_message_order(recorder.received(name))
        duplicates = len(recorder.received(name)) - len(events)
        print(f"sink {name}: {duplicates} duplicate deliveries across the takeover")


WEBHOOKS = """
shutdown_timeout = "10s"

[worker]
lease = "2s"

[[sinks]]
name = "one"
kind = "webhook"
url = "{one}/hook"
allow_private = true
secret = "{secret}"
batch_size = 20
retry = {{ initial = "50ms", max = "500ms" }}

[[sinks]]
name = "two"
kind = "webhook"
url = "{two}/hook"
allow_private = true
secret = "{secret}"
batch_size = 20
retry = {{ initial = "50ms", max = "500ms" }}
"""


def config_path(config: Config) -> Path:
    return config.data_dir.parent / "dlrhub.toml"


def worker_process(config: Config) -> ServerProcess:
    return ServerProcess(
        dlrhub_argv("worker", "--config", str(config_path(config))),
        config.data_dir.parent / "worker.log",
        prints("dlrhub worker: delivering"),
        env=environment_without_dlrhub(),
    )


async def owner_pids(h: Harness) -> dict[str, int]:
    """The pid of each sink's lease holder (owner names are host:pid:nonce)."""
    states = await h.state.states()
    return {s.sink: int(s.lease_owner.split(":")[1]) for s in states if s.lease_owner}


@pytest.mark.slow
async def test_worker_processes_sigterm_hands_over_at_once_and_sigkill_within_the_lease(
    tmp_path: Path, schema: str
) -> None:
    one, two = Receiver(mode="slow", hang_seconds=0.02), Receiver(mode="slow", hang_seconds=0.02)
    events = make_events(1200, messages=40)
    async with serve_app(one.app()) as one_url, serve_app(two.app()) as two_url:
        one.base_url, two.base_url = one_url, two_url
        sinks = WEBHOOKS.format(one=one_url, two=two_url, secret=SECRET)
        configs = [
            sink_config(tmp_path / name, sinks, store=postgres_toml(schema)) for name in "abc"
        ]
        async with harness(configs[0]) as h:
            await ingest(h.store, events[:400])
            workers = [worker_process(config) for config in configs]
            try:
                await workers[0].start()
                await workers[1].start()
                await eventually_async(
                    lambda: has_one_each(h, {w.process.pid for w in workers[:2]}), 20
                )
                status = await asyncio.to_thread(
                    subprocess.run,
                    dlrhub_argv(
                        "sinks", "status", "--json", "--config", str(config_path(configs[0]))
                    ),
                    capture_output=True,
                    env=environment_without_dlrhub(),
                    check=True,
                )
                shown = [orjson.loads(line)["lease_owner"] for line in status.stdout.splitlines()]
                assert {int(owner.split(":")[1]) for owner in shown} == {
                    workers[0].process.pid,
                    workers[1].process.pid,
                }
                # SIGTERM: the worker exits within shutdown_timeout, its lease released at once.
                pids = await owner_pids(h)
                sink = next(name for name, pid in pids.items() if pid == workers[0].process.pid)
                before = await lease_row(h, sink)
                assert await workers[0].stop(grace=10) == 0
                await eventually_async(
                    lambda: owners_are(h, {workers[1].process.pid}), 10, "the other takes over"
                )
                after = await lease_row(h, sink)
                assert after["expires_us"] - 2_000_000 < before["expires_us"]

                # SIGKILL: the other worker takes the sink over when the lease runs out.
                await workers[2].start()
                await eventually_async(
                    lambda: has_one_each(h, {w.process.pid for w in workers[1:]}), 20
                )
                await ingest(h.store, events[400:800])
                pids = await owner_pids(h)
                doomed = {"one": one, "two": two}[
                    next(name for name, pid in pids.items() if pid == workers[1].process.pid)
                ]
                await eventually_async(lambda: len(doomed.ids) >= 500, 20)  # mid-delivery
                await workers[1].kill()
                await ingest(h.store, events[800:])
                await eventually_async(
                    lambda: owners_are(h, {workers[2].process.pid}), 20, "the survivor takes over"
                )
                every = {event.id for event in events}
                await eventually_async(lambda: one.ids == every and two.ids == every, 60)
            finally:
                for worker in workers:
                    await worker.stop()
    for receiver in (one, two):
        assert_per_message_order(receiver.events)
        print(f"duplicates: {len(receiver.events) - len(events)} of {len(events)}")


async def has_one_each(h: Harness, pids: set[int]) -> bool:
    owners = await owner_pids(h)
    return len(owners) == 2 and set(owners.values()) == pids


async def owners_are(h: Harness, pids: set[int]) -> bool:
    owners = await owner_pids(h)
    return len(owners) == 2 and set(owners.values()) == pids
