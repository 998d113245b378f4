"""Delivery attempts kept per event, through the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from dlrhub.event import Event
from dlrhub.sinks.attempts import AttemptLog
from dlrhub.sinks.cursor import Cursor
from dlrhub.sinks.operations import retry_dead_letters
from dlrhub.sinks.reporting import SinkStats
from dlrhub.store import EventFilter
from dlrhub.store.sink_state import (
    DeliveryAttempt,
    LeaseLost,
    SinkStateStore,
    SinkStateUnavailable,
)
from tests.sinks.conftest import Harness, harness, ingest, make_events, sink_config
from tests.sinks.test_engine import SINK, FakeSink, config_for, run_until, service
from tests.waiting import eventually_async

Row = tuple[int, str, str | None]  # attempt, outcome, answer


async def attempts_of(h: Harness, events: Sequence[Event]) -> dict[str, list[Row]]:
    """Each event's attempts, in the order they were made."""
    found: dict[str, list[Row]] = {event.id: [] for event in events}
    for row in await h.state.delivery_attempts([event.id for event in events]):
        assert row.sink == "fake"
        assert row.duration_ms is not None and row.duration_ms >= 0
        found[row.event_id].append((row.attempt, row.outcome, row.answer))
    return found


async def test_a_sink_failing_twice_then_delivering_gives_three_rows_per_event(
    tmp_path: Path, store_toml: str
) -> None:
    config = config_for(tmp_path, batch_size=10, store=store_toml)
    events = make_events(5)
    async with harness(config) as h:
        await ingest(h.store, events)
        before = datetime.now(UTC)
        sink = FakeSink(failures_left=2)
        await run_until(h, sink, lambda: len(sink.delivered) == 5)
        expected = [
            (1, "retrying", "answered 500"),
            (2, "retrying", "answered 500"),
            (3, "delivered", None),
        ]
        assert await attempts_of(h, events) == {event.id: expected for event in events}
        rows = await h.state.delivery_attempts([events[0].id])
        assert before <= rows[0].at <= rows[1].at <= rows[2].at <= datetime.now(UTC)
        stored = {event.id: event.seq for event in await h.store.events(EventFilter(limit=10))}
        assert [row.seq for row in rows] == [stored[events[0].id]] * 3


async def test_a_given_up_event_has_its_attempts_then_its_dead_letter_retry(
    tmp_path: Path, store_toml: str
) -> None:
    config = config_for(tmp_path, batch_size=5, store=store_toml)  # max_attempts = 3
    events = make_events(5)
    poisoned = events[2]
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(poison={poisoned.id})
        await run_until(h, sink, lambda: len(sink.delivered) == 4)
        await eventually_async(lambda: h.state.dead_letters("fake"), 5)
        batch = [
            (1, "retrying", "answered 500"),
            (2, "retrying", "answered 500"),
            (3, "given_up", "answered 500"),
        ]
        found = await attempts_of(h, events)
        # The batch was given up, then tried event by event: only the poisoned one fails.
        assert found[poisoned.id] == batch + batch
        for event in events:
            if event is not poisoned:
                assert found[event.id] == [*batch, (1, "delivered", None)]

        sink.poison.clear()
        assert await retry_dead_letters(h.store, h.state, config.sinks[0], None) == 1
        await run_until(h, sink, lambda: len(sink.delivered) == 5)
        found = await attempts_of(h, [poisoned])
        assert found[poisoned.id] == [*batch, *batch, (1, "delivered", None)]


async def test_an_unavailable_sink_gives_unavailable_rows(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, batch_size=10, store=store_toml)
    events = make_events(2)
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(unavailable_left=2)
        await run_until(h, sink, lambda: len(sink.delivered) == 2)
        expected = [
            (1, "unavailable", "connection refused"),
            (2, "unavailable", "connection refused"),
            (3, "delivered", None),
        ]
        assert await attempts_of(h, events) == {event.id: expected for event in events}


async def test_record_attempts_false_keeps_none(tmp_path: Path) -> None:
    config = config_for(tmp_path, extra="record_attempts = false")
    assert config.sinks[0].record_attempts is False
    events = make_events(3)
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(failures_left=1)
        await run_until(h, sink, lambda: len(sink.delivered) == 3)
        assert await h.state.delivery_attempts([event.id for event in events]) == []


async def test_every_event_of_a_busy_sink_gets_one_row(tmp_path: Path) -> None:
    config = config_for(tmp_path, batch_size=10, max_in_flight=4)
    events = make_events(2000)
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink()
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: len(sink.delivered) == 2000, 30)
        finally:
            await running.stop()
        found = await h.state.delivery_attempts([event.id for event in events])
        assert len(found) == 2000
        assert {(row.attempt, row.outcome) for row in found} == {(1, "delivered")}


async def test_the_message_api_lists_the_deliveries_of_its_events(
    tmp_path: Path, store_toml: str
) -> None:
    import httpx

    from dlrhub.app import create_app
    from tests.conftest import ADMIN_TOKEN
    from tests.serving import serve_app

    sinks = SINK.format(batch_size=10, max_in_flight=1, extra="")
    config = sink_config(tmp_path, sinks, extra=f'admin_token = "{ADMIN_TOKEN}"', store=store_toml)
    events = make_events(6, messages=2)  # three events of each message
    mine = [event for event in events if event.message_id == events[0].message_id]
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(failures_left=1)
        running = service(h, sink)
        app = create_app(config, services=[running], ingest_worker=False)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with (
            serve_app(app) as base_url,
            httpx.AsyncClient(base_url=base_url, headers=headers) as admin,
        ):
            path = f"/v1/messages/nrs360/{events[0].message_id}"

            async def two_per_event() -> bool:
                answer = (await admin.get(path)).json()
                return len(answer["deliveries"]) == 6

            await eventually_async(two_per_event, 10)
            answer = (await admin.get(path)).json()
            missing = await admin.get("/v1/messages/nrs360/no-such-message")
    assert [event["id"] for event in answer["events"]] == [event.id for event in mine]
    deliveries = answer["deliveries"]
    assert {row["event_id"] for row in deliveries} == {event.id for event in mine}
    assert sorted((row["attempt"], row["outcome"]) for row in deliveries) == [
        *[(1, "retrying")] * 3,
        *[(2, "delivered")] * 3,
    ]
    assert [row["at"] for row in deliveries] == sorted(row["at"] for row in deliveries)
    assert set(deliveries[0]) == {
        "sink",
        "seq",
        "event_id",
        "attempt",
        "at",
        "outcome",
        "duration_ms",
        "answer",
    }
    assert deliveries[0]["answer"] == "answered 500" and deliveries[-1]["answer"] is None
    assert missing.status_code == 404


class FlakyState:
    """Only what `Cursor.commit` calls; fails the way the test says."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.written: list[DeliveryAttempt] = []

    async def advance(
        self, *args: Any, attempts: Sequence[DeliveryAttempt] = (), **kw: Any
    ) -> None:
        await self.record_attempts(attempts)

    async def record_attempts(self, rows: Sequence[DeliveryAttempt], **kw: Any) -> None:
        if self.error is not None:
            raise self.error
        self.written += rows


async def test_a_failed_write_keeps_the_rows_and_a_lost_lease_drops_them() -> None:
    state = FlakyState()
    cursor = Cursor("fake", cast(SinkStateStore, state), SinkStats())
    (event,) = make_events(1)
    event = event.with_seq(7)
    now = datetime.now(UTC)
    cursor.attempts.add([event], 1, "retrying", now, 1.0, "answered 500")
    state.error = SinkStateUnavailable("down")
    with pytest.raises(SinkStateUnavailable):
        await cursor.commit()
    cursor.attempts.add([event], 2, "retrying", now, 1.0, "answered 500")
    state.error = None
    await cursor.commit()
    assert [row.attempt for row in state.written] == [1, 2]  # kept, in order

    cursor.attempts.add([event], 3, "delivered", now, 1.0, None)
    state.error = LeaseLost("taken")
    with pytest.raises(LeaseLost):
        await cursor.commit()
    state.error = None
    await cursor.commit()
    assert [row.attempt for row in state.written] == [1, 2]  # the stale worker's row is gone


def test_the_pending_rows_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dlrhub.sinks.attempts.MAX_PENDING", 3)
    log = AttemptLog("fake", enabled=True, wake=lambda: None)
    events = [event.with_seq(n) for n, event in enumerate(make_events(5), start=1)]
    log.add(events, 1, "delivered", datetime.now(UTC), 1.0, None)
    assert [row.seq for row in log.take()] == [3, 4, 5]  # the oldest went
