"""`rabbitmq` sink against the real broker: delivery, a queue that refuses, a cut connection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest

from tests.sinks.conftest import (
    Proxy,
    assert_per_message_order,
    deliveries_tried,
    harness,
    ingest,
    make_events,
    require_tcp,
    sink_config,
)
from tests.waiting import eventually_async

AMQP = "amqp://guest:guest@127.0.0.1:{port}/"


@pytest.fixture
async def channel() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    require_tcp(5672, "RabbitMQ", "rabbitmq-server -detached (guest/guest on 5672)")
    connection = await aio_pika.connect(AMQP.format(port=5672))
    async with connection:
        yield await connection.channel()


def rabbit_sink(port: int, queue: str, **extra: Any) -> str:
    lines = [
        "[[sinks]]",
        'name = "amqp"',
        'kind = "rabbitmq"',
        f'url = "{AMQP.format(port=port)}"',
        f'routing_key = "{queue}"',
        'timeout = "1s"',
        'retry = { initial = "20ms", max = "200ms", max_attempts = 1000 }',
        *(f"{key} = {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


async def drain(queue: aio_pika.abc.AbstractQueue, into: list[dict[str, Any]]) -> None:
    async with queue.iterator() as messages:
        async for message in messages:
            async with message.process():
                event = orjson.loads(message.body)
                assert message.message_id == event["id"]
                assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                into.append(event)


async def test_consumer_reads_every_event_in_order(
    tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    name = f"dlrhub-test-{uuid.uuid4().hex}"
    queue = await channel.declare_queue(name, auto_delete=True)
    config = sink_config(tmp_path, rabbit_sink(5672, name))
    events = make_events(3000, messages=300)
    received: list[dict[str, Any]] = []
    consumer = asyncio.create_task(drain(queue, received))
    try:
        async with harness(config) as h, h.service():
            await ingest(h.store, events)
            await eventually_async(lambda: len(received) >= 3000, 60)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await queue.delete(if_unused=False, if_empty=False)
    assert [item["id"] for item in received] == [event.id for event in events]
    assert_per_message_order(received)


async def test_a_full_queue_that_refuses_publishes_leads_to_retries(
    tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    name = f"dlrhub-test-{uuid.uuid4().hex}"
    queue = await channel.declare_queue(
        name, arguments={"x-max-length": 100, "x-overflow": "reject-publish"}
    )
    config = sink_config(tmp_path, rabbit_sink(5672, name, batch_size=50))
    events = make_events(600)
    received: list[dict[str, Any]] = []
    try:
        async with harness(config) as h, h.service() as service:
            await ingest(h.store, events)
            runner = service.runners[0]
            await eventually_async(lambda: runner.stats.failed_attempts >= 3, 30)  # nacked: full
            consumer = asyncio.create_task(drain(queue, received))
            try:
                await eventually_async(lambda: len({e["id"] for e in received}) >= 600, 60)
            finally:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
            assert await h.state.dead_letters("amqp") == []
            assert "nack" in (runner.stats.last_error or "")
    finally:
        await queue.delete(if_unused=False, if_empty=False)
    assert {item["id"] for item in received} == {event.id for event in events}
    assert_per_message_order(received)


async def test_a_connection_closed_by_the_network_is_reopened(
    tmp_path: Path, channel: aio_pika.abc.AbstractChannel
) -> None:
    name = f"dlrhub-test-{uuid.uuid4().hex}"
    queue = await channel.declare_queue(name, auto_delete=True)
    proxy = Proxy(5672)
    await proxy.start()
    config = sink_config(tmp_path, rabbit_sink(proxy.port, name))
    before, during = make_events(500), make_events(1000)
    received: list[dict[str, Any]] = []
    consumer = asyncio.create_task(drain(queue, received))
    try:
        async with harness(config) as h, h.service() as service:
            runner = service.runners[0]
            await ingest(h.store, before)
            await eventually_async(lambda: runner.stats.delivered >= 500, 30)
            proxy.cut()
            await ingest(h.store, during)
            await eventually_async(lambda: runner.stats.state == "down", 30)
            await deliveries_tried(runner, 3)  # a few retries through the cut proxy
            proxy.restore()
            await eventually_async(lambda: len({e["id"] for e in received}) >= 1500, 60)
            assert await h.state.dead_letters("amqp") == []
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await queue.delete(if_unused=False, if_empty=False)
        await proxy.close()
    assert {item["id"] for item in received} == {event.id for event in before + during}
    assert_per_message_order(received)
