"""`redis` sink against real Redis: the shared one on 6379, and one the test kills."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from tests.processes import ServerProcess
from tests.sinks.conftest import (
    assert_per_message_order,
    deliveries_tried,
    harness,
    ingest,
    make_events,
    require_tcp,
    sink_config,
)
from tests.waiting import eventually_async


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    require_tcp(6379, "Redis", "redis-server --port 6379 --daemonize yes")
    name = f"dlrhub-test-{uuid.uuid4().hex}"
    yield name
    client = Redis(port=6379)
    await client.delete(name)
    await client.aclose()


async def read_stream(client: Redis, name: str) -> list[dict[str, object]]:
    entries = []
    last = "-"
    while batch := await client.xrange(name, min=last, count=1000):
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for _entry_id, fields in batch:
            event = orjson.loads(fields[b"event"])
            assert fields[b"id"].decode() == event["id"]
            entries.append(event)
        last = batch[-1][0].decode()
    return entries


def redis_sink(port: int, stream: str) -> str:
    return (
        f'[[sinks]]\nname = "streams"\nkind = "redis"\nurl = "redis://127.0.0.1:{port}/0"\n'
        f'stream = "{stream}"\ntimeout = "1s"\n'
        'retry = { initial = "20ms", max = "200ms" }\n'
    )


async def test_consumer_reads_every_event_in_order(tmp_path: Path, stream: str) -> None:
    config = sink_config(tmp_path, redis_sink(6379, stream))
    events = make_events(4000, messages=300)
    client = Redis(port=6379)
    try:
        async with harness(config) as h, h.service():
            await ingest(h.store, events)

            async def all_there() -> bool:
                return int(await client.xlen(stream)) >= 4000

            await eventually_async(all_there, 60)
        received = await read_stream(client, stream)
    finally:
        await client.aclose()
    assert [item["id"] for item in received] == [event.id for event in events]
    assert_per_message_order(received)


async def test_events_ingested_while_redis_is_down_arrive_after_restart(
    tmp_path: Path, own_redis: ServerProcess
) -> None:
    config = sink_config(tmp_path, redis_sink(own_redis.port, "outage"))
    before, during = make_events(500), make_events(1500)
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, before)
        runner = service.runners[0]
        await eventually_async(lambda: runner.stats.delivered >= 500, 30)
        await own_redis.kill()
        await ingest(h.store, during)
        await eventually_async(lambda: runner.stats.state == "down", 30)
        await deliveries_tried(runner, 3)  # a few retries against the dead port
        assert runner.stats.failed_attempts == 0
        await own_redis.start()
        await eventually_async(
            lambda: runner.stats.delivered >= 2000 and runner.stats.lag_events == 0, 30
        )
        assert await h.state.dead_letters("streams") == []
    client = Redis(port=own_redis.port)
    try:
        received = await read_stream(client, "outage")
    finally:
        await client.aclose()
    assert {item["id"] for item in received} == {event.id for event in before + during}
    assert_per_message_order(received)
