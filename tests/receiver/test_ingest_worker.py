"""Callbacks normalized and committed by the worker process (`server.ingest_worker`)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from dlrhub.event import RawCallback
from dlrhub.receiver.ingest import Ingested, Normalize
from dlrhub.receiver.ingest_worker import (
    _COMMIT_NOTICE,
    FRAMES_PER_TURN,
    IngestWorker,
    _decode_reply,
    _encode,
    _Framed,
    _Request,
    _Worker,
)
from dlrhub.receiver.metrics import Metrics
from dlrhub.store import Accept, Probe, Quarantine, StoreUnavailable
from dlrhub.store.settings import open_store
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.payloads import FORM, event_form
from tests.serving import serve_app
from tests.waiting import eventually_async

TOKEN = {"token": SOURCE_TOKEN}


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_killed_worker_means_503_then_a_new_worker_takes_over(config: Config) -> None:
    app = create_app(config, ingest_worker=True)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        worker: IngestWorker = app.state.ingest_worker
        first_pid = worker.pid
        assert first_pid is not None
        post = {"params": TOKEN, "headers": FORM}
        answer = await client.post("/hooks/nrs360/events", content=event_form("sent"), **post)
        assert answer.json()["status"] == "stored"

        os.kill(first_pid, signal.SIGKILL)
        await eventually_async(lambda: worker.pid is None, 20)
        refused = await client.post("/hooks/nrs360/events", content=event_form("delivered"), **post)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"] == "store_unavailable"
        assert (await client.get("/readyz")).status_code == 503

        await eventually_async(lambda: worker.pid is not None, 20)
        assert worker.pid != first_pid
        retried = await client.post("/hooks/nrs360/events", content=event_form("delivered"), **post)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "stored"
        assert (await client.get("/readyz")).status_code == 200
        events = await client.get("/v1/events", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert [e["provider_status"] for e in events.json()["events"]] == ["sent", "delivered"]


async def test_the_worker_reports_its_commits_and_stops_with_the_app(config: Config) -> None:
    app = create_app(config, ingest_worker=True)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        pid = app.state.ingest_worker.pid
        answers = await asyncio.gather(
            *(
                client.post(
                    "/hooks/nrs360/events",
                    params=TOKEN,
                    headers=FORM,
                    content=event_form("delivered", message_id=f"m-{number}"),
                )
                for number in range(40)
            )
        )
        assert {answer.status_code for answer in answers} == {200}
        metrics = (await client.get("/metrics")).text
        count_line = next(
            line for line in metrics.splitlines() if line.startswith("dlrhub_commit_batch_size_sum")
        )
        assert float(count_line.split()[-1]) >= 40
    assert pid is not None
    await eventually_async(lambda: not process_exists(pid), 5, "the worker to exit with the app")
    assert not process_exists(pid), "the worker outlived the app"


class _Link:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, payload: bytes) -> None:
        self.sent.append(payload)


class _BrokenStore:
    def submit(self, item: object) -> object:
        raise RuntimeError("boom in the store")


class _ClosedStore:
    def submit(self, item: object) -> object:
        raise StoreUnavailable("the store is not open")


def raw_callback(body: bytes = b"x=1") -> RawCallback:
    return RawCallback(
        "nrs360",
        "nrs360",
        "events",
        "POST",
        "",
        FORM["Content-Type"],
        body,
        datetime.now(UTC),
        "127.0.0.1",
    )


def request_frame(config: Config, request_id: int = 7, body: bytes = b"x=1") -> bytes:
    """The frame a receiver sends: the callback normalized and redacted already."""
    item = Normalize(config)(raw_callback(body))
    if isinstance(item, Accept):
        return _encode(_Request(request_id, accept=item))
    return _encode(_Request(request_id, quarantine=item))


class _WritingLink(_Link):
    """A link that keeps each write (`flush`) apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[bytes]] = []

    def flush(self) -> None:
        if self.sent:
            self.writes.append(self.sent)
            self.sent = []


async def test_a_commit_answers_all_its_callbacks_in_one_write_at_once(config: Config) -> None:
    link = _WritingLink()
    worker: _Worker | None = None

    def on_commit(size: int) -> None:
        assert worker is not None
        worker.on_commit(size)

    store = open_store(config.store, config.data_dir, on_commit=on_commit, blocking_commit=True)
    await store.open()
    try:
        worker = _Worker(store, link)  # type: ignore[arg-type]
        for number in range(1, 6):
            form = event_form("delivered", message_id=f"m-{number}")
            worker.on_request(request_frame(config, number, form.encode()))
        assert link.sent == []  # nothing is answered before its commit
        await eventually_async(lambda: link.writes, 20)
        notice, *answers = [_decode_reply(frame) for frame in link.writes[0]]
        assert (notice.id, notice.committed) == (_COMMIT_NOTICE, 5)
        assert [answer.id for answer in answers] == [1, 2, 3, 4, 5]
        assert all(answer.ingested is not None for answer in answers)
        for _ in range(3):  # the futures' own callbacks run later and find nothing left
            await asyncio.sleep(0)
        assert (len(link.writes), link.sent) == (1, [])
    finally:
        await store.close()


async def test_a_commit_that_fails_answers_its_callbacks_unavailable(config: Config) -> None:
    import sqlite3

    link = _WritingLink()
    store = open_store(config.store, config.data_dir, blocking_commit=True)
    await store.open()
    try:
        with sqlite3.connect(config.sqlite_path) as other:
            other.execute("DROP TABLE events")  # every insert of an event now fails
        worker = _Worker(store, link)  # type: ignore[arg-type]
        worker.on_request(request_frame(config, 3, event_form("delivered").encode()))
        await eventually_async(lambda: link.sent, 20)
        (reply,) = [_decode_reply(frame) for frame in link.sent]
        assert reply.id == 3
        assert reply.unavailable is not None and "could not commit" in reply.unavailable
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("store", "field", "text"),
    [
        (_BrokenStore(), "failed", "boom in the store"),
        (_ClosedStore(), "unavailable", "not open"),
    ],
)
def test_the_worker_answers_a_callback_it_cannot_take_and_keeps_serving(
    config: Config, store: object, field: str, text: str
) -> None:
    link = _Link()
    worker = _Worker(store, link)  # type: ignore[arg-type]
    worker.on_request(request_frame(config))
    worker.on_request(request_frame(config))  # still serving
    replies = [_decode_reply(frame) for frame in link.sent]
    assert [reply.id for reply in replies] == [7, 7]
    assert all(text in getattr(reply, field) for reply in replies)
    assert all(reply.ingested is None for reply in replies)


def test_ingested_crosses_the_socket_unchanged() -> None:
    from dlrhub.receiver.ingest_worker import _Reply

    reply = _Reply(3, Ingested("quarantined", False, [], 12, "no 'event' field"))
    assert _decode_reply(_encode(reply)) == reply


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""


@given(
    st.lists(st.binary(max_size=40), max_size=30),
    st.lists(st.integers(1, 50), min_size=1, max_size=10),
)
@settings(deadline=None)
def test_frames_arrive_whole_and_in_order_however_the_stream_is_cut(
    payloads: list[bytes], cuts: list[int]
) -> None:
    async def scenario() -> list[bytes]:
        received: list[bytes] = []
        sender = _Framed(received.append)
        sender.connection_made(_Transport())  # type: ignore[arg-type]
        for payload in payloads:
            sender.send(payload)
        await asyncio.sleep(0)  # the flush runs on the next turn
        stream = b"".join(sender._transport.written)  # type: ignore[union-attr]
        receiver = _Framed(received.append)
        position, index = 0, 0
        while position < len(stream):
            size = cuts[index % len(cuts)]
            receiver.data_received(stream[position : position + size])
            position, index = position + size, index + 1
        for _ in range(len(payloads) + 1):  # frames beyond one turn's share come later
            await asyncio.sleep(0)
        return received

    assert asyncio.run(scenario()) == payloads


async def test_a_burst_of_frames_is_handed_on_a_turn_at_a_time() -> None:
    received: list[bytes] = []
    link = _Framed(received.append)
    burst = b"".join(len(p).to_bytes(4, "big") + p for p in [b"x"] * (FRAMES_PER_TURN * 2 + 1))
    link.data_received(burst)
    assert len(received) == FRAMES_PER_TURN  # the store's writer may start a commit now
    await asyncio.sleep(0)
    assert len(received) == FRAMES_PER_TURN * 2
    await asyncio.sleep(0)
    assert len(received) == FRAMES_PER_TURN * 2 + 1


def test_the_normalized_callback_and_its_dedupe_key_cross_the_socket_unchanged(
    config: Config,
) -> None:
    from dlrhub.receiver.ingest_worker import _decode_request

    raw = RawCallback(
        "nrs360",
        "nrs360",
        "dlr",
        "GET",
        f"status=1&ref=a&phone=%2B34600000001&token={SOURCE_TOKEN}",
        "",
        b"",
        datetime.now(UTC),
        None,
    )
    key = raw.dedupe_key()
    item = Normalize(config)(raw)
    assert isinstance(item, Accept) and item.events
    assert SOURCE_TOKEN not in item.raw.query  # redacted in the receiver, before it leaves
    crossed = _decode_request(_encode(_Request(9, accept=item))).item()
    assert crossed == item
    assert isinstance(crossed, Accept)
    assert crossed.raw._dedupe_key == key  # the worker does not hash it again
    quarantined = Quarantine(item.raw, "no such status")
    assert _decode_request(_encode(_Request(9, quarantine=quarantined))).item() == quarantined
    assert isinstance(_decode_request(_encode(_Request(9))).item(), Probe)


async def test_a_worker_that_cannot_open_the_store_fails_the_start_once(
    tmp_path: Path, refused_port: int
) -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{refused_port}/nothing_listens_here"
    store = f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\n'
    worker = IngestWorker(load_config(write_config(tmp_path, extra=store), env={}), Metrics())
    with pytest.raises(StoreUnavailable, match="could not start"):
        await worker.start()
    assert worker.pid is None
    assert worker._restart is None  # the failed start is the caller's, not a restart loop's
    assert worker.unavailable() is not None
