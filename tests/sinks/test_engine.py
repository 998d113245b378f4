"""The engine against a programmable in-memory sink and a real store, on both backends."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Sequence
from pathlib import Path

from dlrhub.event import Event, Status
from dlrhub.sinks.base import (
    DeliveryFailed,
    DeliveryRejected,
    Sink,
    SinkGone,
    SinkUnavailable,
)
from dlrhub.sinks.engine import SinkRunner
from dlrhub.sinks.lag import head_seq
from dlrhub.sinks.operations import queue_replay, retry_dead_letters, set_paused
from dlrhub.sinks.service import SinkService
from dlrhub.sinks.settings import SinkConfig
from tests.sinks.conftest import (
    Harness,
    assert_per_message_order,
    harness,
    ingest,
    make_events,
    sink_config,
)
from tests.waiting import eventually_async


@dataclasses.dataclass
class FakeSink:
    """Records batches; fails the way a test tells it to."""

    batches: list[list[Event]] = dataclasses.field(default_factory=list)
    poison: set[str] = dataclasses.field(default_factory=set)  # DeliveryFailed while present
    reject: set[str] = dataclasses.field(default_factory=set)  # DeliveryRejected
    unavailable: bool = False
    gone: bool = False
    calls: int = 0
    failures_left: int = 0  # DeliveryFailed for this many more calls
    unavailable_left: int = 0  # SinkUnavailable for this many more calls

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        if self.unavailable_left > 0:
            self.unavailable_left -= 1
            raise SinkUnavailable("connection refused")
        if self.failures_left > 0:
            self.failures_left -= 1
            raise DeliveryFailed("answered 500")
        if self.unavailable:
            raise SinkUnavailable("connection refused")
        if self.gone:
            raise SinkGone("answered 410")
        if any(event.id in self.reject for event in batch):
            raise DeliveryRejected("answered 400")
        if any(event.id in self.poison for event in batch):
            raise DeliveryFailed("answered 500")
        self.batches.append(list(batch))

    @property
    def delivered(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


SINK = """
[[sinks]]
name = "fake"
kind = "stdout"
batch_size = {batch_size}
max_in_flight = {max_in_flight}
retry = {{ initial = "5ms", max = "20ms", max_attempts = 3 }}
{extra}
"""


def config_for(  # type: ignore[no-untyped-def]
    tmp_path: Path, batch_size: int = 10, max_in_flight: int = 1, extra: str = "", store: str = ""
):
    sinks = SINK.format(batch_size=batch_size, max_in_flight=max_in_flight, extra=extra)
    return sink_config(tmp_path, sinks, store=store)


async def empty(rows: Awaitable[Sequence[object]]) -> bool:
    return not await rows


def service(h: Harness, sink: Sink) -> SinkService:
    return SinkService(h.config, create=lambda _: sink, poll_interval=0.005, control_interval=0.02)


async def run_until(h: Harness, sink: FakeSink, condition, seconds: float = 10.0) -> SinkService:  # type: ignore[no-untyped-def]
    running = service(h, sink)
    await running.start()
    try:
        await eventually_async(condition, seconds)
    finally:
        await running.stop()
    return running


async def test_filter_batches_lanes_and_order(tmp_path: Path, store_toml: str) -> None:
    extra = 'filter = { sources = ["nrs360"], statuses = ["sent", "delivered"] }'
    config = config_for(tmp_path, batch_size=7, max_in_flight=4, extra=extra, store=store_toml)
    events = make_events(1200, messages=40)
    async with harness(config) as h:
        await ingest(h.store, events)
        expected = [
            e
            for e in events
            if e.source == "nrs360" and e.status in (Status.SENT, Status.DELIVERED)
        ]
        sink = FakeSink()
        await run_until(h, sink, lambda: len(sink.delivered) >= len(expected))
        assert sorted(e.id for e in sink.delivered) == sorted(e.id for e in expected)
        assert max(len(batch) for batch in sink.batches) == 7
        assert_per_message_order(sink.delivered)
        state = await h.state.state("fake")
        assert state is not None and state.after_seq == await head_seq(h.store) == len(events)
        assert state.delivered == len(expected)


async def test_restart_continues_from_the_cursor(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, store=store_toml)
    async with harness(config) as h:
        await ingest(h.store, make_events(100))
        first = FakeSink()
        await run_until(h, first, lambda: len(first.delivered) == 100)
        later = make_events(50)
        await ingest(h.store, later)
        second = FakeSink()
        await run_until(h, second, lambda: len(second.delivered) == 50)
        assert [e.id for e in second.delivered] == [e.id for e in later]


async def test_a_poisoned_event_is_dead_lettered_alone_then_retried(
    tmp_path: Path, store_toml: str
) -> None:
    config = config_for(tmp_path, batch_size=10, store=store_toml)
    events = make_events(40)
    poisoned = events[13]
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(poison={poisoned.id})
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: len(sink.delivered) == 39)
            await eventually_async(lambda: running.runners[0].stats.dead_lettered == 1)
            letters = await h.state.dead_letters("fake")
            assert [(d.event.id, d.attempts, d.error) for d in letters] == [
                (poisoned.id, 3, "answered 500")
            ]
            assert running.runners[0].stats.failed_attempts == 6  # 3 as a batch, 3 alone
            await eventually_async(lambda: running.runners[0].stats.after_seq == 40)

            sink.poison.clear()
            assert await retry_dead_letters(h.store, h.state, config.sinks[0], None) == 1
            await eventually_async(lambda: poisoned.id in {e.id for e in sink.delivered})
            await eventually_async(lambda: empty(h.state.dead_letters("fake")), 5)
        finally:
            await running.stop()
        assert await h.state.dead_letters("fake") == []
        assert [e.id for e in sink.delivered].count(poisoned.id) == 1


async def test_a_restart_mid_retry_continues_the_attempt_count(
    tmp_path: Path, store_toml: str
) -> None:
    sinks = (
        '[[sinks]]\nname = "fake"\nkind = "stdout"\nbatch_size = 1\n'
        'retry = { initial = "300ms", max = "300ms", max_attempts = 4 }\n'
    )
    config = sink_config(tmp_path, sinks, store=store_toml)
    events = make_events(3)
    poisoned = events[1]
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(poison={poisoned.id})
        tries = lambda: sink.calls - len(sink.delivered)  # noqa: E731
        await run_until(h, sink, lambda: tries() >= 2)  # stopped while waiting to retry
        assert await h.state.dead_letters("fake") == []
        first_run = tries()
        await run_until(h, sink, lambda: h.state.dead_letters("fake"))
        (letter,) = await h.state.dead_letters("fake")
        assert letter.attempts == 4
        assert tries() == 4  # not 4 more after the restart
        assert first_run < 4
        assert [e.id for e in sink.delivered] == [events[0].id, events[2].id]


async def test_rejected_events_are_dead_letters_without_retries(
    tmp_path: Path, store_toml: str
) -> None:
    config = config_for(tmp_path, batch_size=1, store=store_toml)
    events = make_events(5)
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink(reject={events[2].id})
        await run_until(h, sink, lambda: len(sink.delivered) == 4)
        letters = await h.state.dead_letters("fake")
        assert [(d.event.id, d.attempts) for d in letters] == [(events[2].id, 1)]
        assert sink.calls == 5


async def test_an_unavailable_sink_is_retried_without_dead_letters(
    tmp_path: Path, store_toml: str
) -> None:
    config = config_for(tmp_path, store=store_toml)
    async with harness(config) as h:
        await ingest(h.store, make_events(30))
        sink = FakeSink(unavailable=True)
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: sink.calls >= 20)  # far more than max_attempts
            runner = running.runners[0]
            assert runner.stats.state == "down"
            assert runner.stats.failed_attempts == 0
            state = await h.state.state("fake")
            assert state is not None and state.last_error == "connection refused"
            sink.unavailable = False
            await eventually_async(lambda: len(sink.delivered) == 30)
        finally:
            await running.stop()
        assert await h.state.dead_letters("fake") == []


async def test_pause_and_resume_through_the_state(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, store=store_toml)
    async with harness(config) as h:
        sink = FakeSink()
        running = service(h, sink)
        await running.start()
        try:
            await ingest(h.store, make_events(20))
            await eventually_async(lambda: len(sink.delivered) == 20)
            await set_paused(h.store, h.state, config.sinks[0], paused=True)
            await eventually_async(lambda: running.runners[0].stats.state == "paused")
            await ingest(h.store, make_events(20))
            await eventually_async(lambda: running.runners[0].stats.lag_events == 20)
            assert len(sink.delivered) == 20
            await set_paused(h.store, h.state, config.sinks[0], paused=False)
            await eventually_async(lambda: len(sink.delivered) == 40)
        finally:
            await running.stop()


async def test_gone_disables_until_resumed(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, store=store_toml)
    async with harness(config) as h:
        await ingest(h.store, make_events(10))
        sink = FakeSink(gone=True)
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: running.runners[0].stats.state == "disabled")
            calls = sink.calls
            state = await h.state.state("fake")
            assert state is not None and state.disabled_reason == "answered 410"
            sink.gone = False
            await ingest(h.store, make_events(5))  # later events: once the runner counts them,
            await eventually_async(lambda: running.runners[0].stats.lag_events == 15)
            assert sink.calls == calls  # nothing while disabled
            await set_paused(h.store, h.state, config.sinks[0], paused=False)
            await eventually_async(lambda: len(sink.delivered) == 15)
        finally:
            await running.stop()
        assert await h.state.dead_letters("fake") == []


async def test_replay_re_delivers_a_range(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, store=store_toml)
    events = make_events(60)
    async with harness(config) as h:
        await ingest(h.store, events)
        sink = FakeSink()
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: len(sink.delivered) == 60)
            job = await queue_replay(h.store, h.state, config.sinks[0], after_seq=20, until_seq=30)
            assert job is not None and (job.after_seq, job.until_seq) == (20, 30)
            await eventually_async(lambda: len(sink.delivered) == 70)
            await eventually_async(lambda: empty(h.state.replays("fake")), 5)
        finally:
            await running.stop()
        assert [e.seq for e in sink.delivered[60:]] == list(range(21, 31))
        assert await h.state.replays("fake") == []


async def test_start_at_end_skips_history(tmp_path: Path, store_toml: str) -> None:
    config = config_for(tmp_path, extra='start = "end"', store=store_toml)
    async with harness(config) as h:
        await ingest(h.store, make_events(25))
        sink = FakeSink()
        running = service(h, sink)
        await running.start()
        try:
            await eventually_async(lambda: running.runners[0].stats.state == "running")
            fresh = make_events(5)
            await ingest(h.store, fresh)
            await eventually_async(lambda: len(sink.delivered) == 5)
        finally:
            await running.stop()
        assert [e.id for e in sink.delivered] == [e.id for e in fresh]


def test_runner_page_size_is_bounded(tmp_path: Path) -> None:
    config: SinkConfig = config_for(tmp_path, batch_size=1, max_in_flight=1).sinks[0]
    runner = SinkRunner(config, FakeSink(), None, None)  # type: ignore[arg-type]
    assert runner.page_size == 200
