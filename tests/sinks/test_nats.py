"""`nats` sink against real NATS JetStream: the shared server, and one the test kills."""

from __future__ import annotations

import uuid
from pathlib import Path

import nats
import orjson

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


def nats_sink(port: int, prefix: str, stream: str) -> str:
    return (
        f'[[sinks]]\nname = "jetstream"\nkind = "nats"\nservers = ["nats://127.0.0.1:{port}"]\n'
        f'subject = "{prefix}.{{provider}}.{{type}}"\nstream = "{stream}"\ncreate_stream = true\n'
        'timeout = "1s"\nretry = { initial = "20ms", max = "200ms" }\n'
    )


async def read_stream(port: int, stream: str, subject: str) -> list[dict[str, object]]:
    """Everything in the stream, in stream order, with an ordered consumer."""
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        jetstream = client.jetstream()
        info = await jetstream.stream_info(stream)
        total = info.state.messages
        subscription = await jetstream.subscribe(subject, ordered_consumer=True)
        received = []
        while len(received) < total:
            message = await subscription.next_msg(timeout=5)
            assert message.headers is not None
            event = orjson.loads(message.data)
            assert message.headers["Nats-Msg-Id"] == event["id"]
            received.append(event)
        await subscription.unsubscribe()
        return received
    finally:
        await client.close()


async def delete_stream(port: int, stream: str) -> None:
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


async def test_consumer_reads_every_event_in_order(tmp_path: Path) -> None:
    require_tcp(4222, "NATS JetStream", "nats-server -js -p 4222 &")
    name = f"DLRHUB_TEST_{uuid.uuid4().hex}"
    prefix = f"dlrhubtest.{uuid.uuid4().hex}"
    config = sink_config(tmp_path, nats_sink(4222, prefix, name))
    events = make_events(3000, messages=300)
    try:
        async with harness(config) as h, h.service() as service:
            await ingest(h.store, events)
            await eventually_async(lambda: service.runners[0].stats.delivered >= 3000, 60)
        received = await read_stream(4222, name, f"{prefix}.>")
    finally:
        await delete_stream(4222, name)
    assert [item["id"] for item in received] == [event.id for event in events]
    assert_per_message_order(received)


async def test_events_ingested_while_nats_is_down_arrive_once_after_restart(
    tmp_path: Path, own_nats: ServerProcess
) -> None:
    config = sink_config(tmp_path, nats_sink(own_nats.port, "outage", "OUTAGE"))
    before, during = make_events(500), make_events(1500)
    async with harness(config) as h, h.service() as service:
        runner = service.runners[0]
        await ingest(h.store, before)
        await eventually_async(lambda: runner.stats.delivered >= 500, 30)
        await own_nats.kill()
        await ingest(h.store, during)
        await eventually_async(lambda: runner.stats.state == "down", 30)
        await deliveries_tried(runner, 3)  # a few retries against the dead port
        await own_nats.start()
        await eventually_async(
            lambda: runner.stats.delivered >= 2000 and runner.stats.lag_events == 0, 60
        )
        assert runner.stats.failed_attempts == 0
        assert await h.state.dead_letters("jetstream") == []
    received = await read_stream(own_nats.port, "OUTAGE", "outage.>")
    # Nats-Msg-Id lets the stream drop redeliveries: every event once.
    assert sorted(item["id"] for item in received) == sorted(e.id for e in before + during)
    assert_per_message_order(received)
