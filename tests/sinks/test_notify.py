"""PostgreSQL: a commit that stores events wakes the sink workers (LISTEN/NOTIFY)."""

from __future__ import annotations

from pathlib import Path

from dlrhub.sinks.service import SinkService
from tests.postgres import fresh_schema, terminate_backends
from tests.sinks.conftest import harness, ingest, make_events, postgres_toml, sink_config
from tests.sinks.test_engine import FakeSink
from tests.waiting import eventually_async

SINK = '[[sinks]]\nname = "fake"\nkind = "stdout"\n'


async def test_a_commit_wakes_a_worker_that_polls_once_a_minute(tmp_path: Path) -> None:
    async with fresh_schema() as schema:
        config = sink_config(tmp_path, SINK, store=postgres_toml(schema))
        async with harness(config) as h:
            sink = FakeSink()
            service = SinkService(config, create=lambda _: sink, poll_interval=60.0)
            await service.start()
            try:
                assert service.notifications is not None
                await eventually_async(lambda: service.notifications.listening, 10)  # type: ignore[union-attr]
                for round_number in range(3):
                    events = make_events(5, start=round_number * 5)
                    await ingest(h.store, events)
                    # Well before the next poll: only the notification can have woken it.
                    wanted = {e.id for e in events}
                    await eventually_async(
                        lambda w=wanted: w <= {e.id for e in sink.delivered},  # type: ignore[misc]
                        20,
                    )
            finally:
                await service.stop()


async def test_without_the_listen_connection_the_slow_poll_still_delivers(
    tmp_path: Path,
) -> None:
    async with fresh_schema() as schema:
        config = sink_config(tmp_path, SINK, store=postgres_toml(schema))
        async with harness(config) as h:
            sink = FakeSink()
            service = SinkService(config, create=lambda _: sink, poll_interval=0.5)
            await service.start()
            try:
                assert service.notifications is not None
                await eventually_async(lambda: service.notifications.listening, 10)  # type: ignore[union-attr]
                await terminate_backends("dlrhub-listen")
                events = make_events(5)
                await ingest(h.store, events)
                await eventually_async(
                    lambda: {e.id for e in events} <= {e.id for e in sink.delivered}, 20
                )
                await eventually_async(lambda: service.notifications.listening, 20)  # type: ignore[union-attr]
            finally:
                await service.stop()
