"""`webhook` sink against a real receiver served by Uvicorn on loopback."""

from __future__ import annotations

import itertools
from pathlib import Path

from standardwebhooks import Webhook
from svix.webhooks import Webhook as SvixWebhook

import dlrhub
from dlrhub.sinks.operations import retry_dead_letters
from dlrhub.sinks.signing import new_secret
from tests.sinks.conftest import (
    SECRET,
    Receiver,
    assert_per_message_order,
    harness,
    ingest,
    make_events,
    sink_config,
)
from tests.waiting import eventually_async

ROLLED = "whsec_c2VudGluZWwtcm9sbGVkLXNlY3JldC0zMi1ieXRlcyE="  # a second secret, while rolling


def webhook(receiver: Receiver, **keys: object) -> str:
    lines = [
        "[[sinks]]",
        'name = "hook"',
        'kind = "webhook"',
        f'url = "{receiver.base_url}/hook"',
        f'secret = "{SECRET}"',
        "allow_private = true",  # the receiver is on loopback
    ]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


async def test_every_event_arrives_signed_and_in_order_per_message(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = sink_config(tmp_path, webhook(receiver, batch_size=50, max_in_flight=4))
    events = make_events(3000, messages=200)
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: len(receiver.events) >= 3000, 60)
    assert receiver.ids == {event.id for event in events}
    assert len(receiver.events) == 3000  # no failures, so no duplicates
    assert_per_message_order(receiver.events)
    verifier = Webhook(SECRET)
    for headers, body in receiver.requests:
        assert verifier.verify(body, headers)["events"]
        assert headers["content-type"] == "application/json"
        assert headers["webhook-id"].startswith("batch_")


async def test_one_event_per_request_by_default(tmp_path: Path, receiver: Receiver) -> None:
    config = sink_config(tmp_path, webhook(receiver))
    events = make_events(400, messages=40)
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: len(receiver.events) >= 400, 60)
    assert len(receiver.requests) == 400
    verifier = Webhook(SECRET)
    for headers, body in receiver.requests:
        payload = verifier.verify(body, headers)
        assert headers["webhook-id"] == payload["id"]
    assert_per_message_order(receiver.events)


async def test_rolling_secrets_sign_every_delivery_with_each(
    tmp_path: Path, receiver: Receiver
) -> None:
    old, new = SECRET, new_secret()
    keys = {"secret": f'["{old}", "{new}"]', "headers_style": '"both"'}
    config = sink_config(tmp_path, webhook(receiver, **keys).replace(f'secret = "{SECRET}"\n', ""))
    events = make_events(20, messages=5)
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: len(receiver.events) >= 20, 30)
    assert len(receiver.requests) == 20
    for headers, body in receiver.requests:
        assert len(headers["webhook-signature"].split(" ")) == 2
        for secret in (old, new):  # a consumer on either side of the roll
            assert Webhook(secret).verify(body, headers)["id"] == headers["webhook-id"]
            SvixWebhook(secret).verify(body, headers)  # reads the svix-* names
        assert dlrhub.verify_webhook(body, headers, [old, new])["id"] == headers["svix-id"]
        assert headers["svix-timestamp"] == headers["webhook-timestamp"]


async def test_svix_style_sends_only_svix_headers(tmp_path: Path, receiver: Receiver) -> None:
    config = sink_config(tmp_path, webhook(receiver, headers_style='"svix"'))
    async with harness(config) as h, h.service():
        await ingest(h.store, make_events(3))
        await eventually_async(lambda: len(receiver.events) >= 3, 30)
    for headers, body in receiver.requests:
        assert not any(name.startswith("webhook-") for name in headers)
        SvixWebhook(SECRET).verify(body, headers)
        assert dlrhub.verify_webhook(body, headers, SECRET)["id"] == headers["svix-id"]


async def test_failing_then_hanging_receiver_gets_everything_after_recovery(
    tmp_path: Path, receiver: Receiver
) -> None:
    keys = {
        "timeout": '"300ms"',
        "retry": '{ initial = "20ms", max = "200ms", max_attempts = 1000 }',
    }
    config = sink_config(tmp_path, webhook(receiver, batch_size=20, **keys))
    before, during = make_events(200), make_events(800)
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, before)
        await eventually_async(lambda: len(receiver.ids) == 200)
        receiver.mode = "fail"
        await ingest(h.store, during[:400])
        await eventually_async(lambda: service.runners[0].stats.failed_attempts >= 5)
        receiver.mode = "hang"
        receiver.hang_seconds = 2.0
        await ingest(h.store, during[400:])
        await eventually_async(lambda: service.runners[0].stats.failed_attempts >= 8)
        await eventually_async(lambda: service.runners[0].stats.lag_events > 0, 5)
        receiver.mode = "ok"
        await eventually_async(lambda: len(receiver.ids) == 1000, 30)
        assert await h.state.dead_letters("hook") == []
    assert receiver.ids == {event.id for event in before + during}
    assert_per_message_order(receiver.events)


async def test_429_waits_for_retry_after_without_counting_attempts(
    tmp_path: Path, receiver: Receiver
) -> None:
    keys = {"retry": '{ initial = "10ms", max = "20ms", max_attempts = 2 }'}
    config = sink_config(tmp_path, webhook(receiver, **keys))
    receiver.mode = "throttle"
    receiver.retry_after = "1"
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, make_events(1))
        await eventually_async(lambda: len(receiver.answered) >= 3, 10)
        receiver.mode = "ok"
        await eventually_async(lambda: len(receiver.events) == 1, 10)
        assert service.runners[0].stats.failed_attempts == 0
    times = [moment for moment, _ in receiver.answered]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.95, gaps


async def test_4xx_is_a_dead_letter_at_once_and_dlq_retry_delivers_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = sink_config(tmp_path, webhook(receiver))
    events = make_events(30)
    receiver.reject_ids = {events[7].id}
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: len(receiver.events) == 29)
        letters = await h.state.dead_letters("hook")
        assert [(d.event.id, d.attempts) for d in letters] == [(events[7].id, 1)]
        assert letters[0].error.startswith(f"POST {receiver.base_url}/hook answered 400")
        assert sum(1 for _, status in receiver.answered if status == 400) == 1
        receiver.reject_ids.clear()
        await retry_dead_letters(h.store, h.state, config.sinks[0], [letters[0].id])
        await eventually_async(lambda: len(receiver.events) == 30)
    assert receiver.ids == {event.id for event in events}


async def test_410_disables_the_sink(tmp_path: Path, receiver: Receiver) -> None:
    config = sink_config(tmp_path, webhook(receiver))
    receiver.mode = "gone"
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, make_events(5))
        await eventually_async(lambda: service.runners[0].stats.state == "disabled")
        requests = len(receiver.requests)
        await ingest(h.store, make_events(5))  # later events: once the runner counts them,
        await eventually_async(lambda: service.runners[0].stats.lag_events == 10)
        assert len(receiver.requests) == requests <= 4  # only what was already in flight
        state = await h.state.state("hook")
        assert state is not None and "answered 410" in (state.disabled_reason or "")


async def test_secrets_stay_out_of_errors(tmp_path: Path, receiver: Receiver) -> None:
    config = sink_config(
        tmp_path,
        webhook(receiver, headers='{ Authorization = "Bearer header-secret-123456" }')
        .replace('/hook"', '/hook?token=query-secret-123456"')
        .replace(f'secret = "{SECRET}"', f'secret = ["{SECRET}", "{ROLLED}"]'),
    )
    receiver.mode = "echo"
    events = make_events(1)
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, events)
        await eventually_async(lambda: service.runners[0].stats.failed_attempts >= 1)

        async def recorded() -> bool:
            current = await h.state.state("hook")
            return current is not None and current.last_error is not None

        await eventually_async(recorded, 10)
        state = await h.state.state("hook")
        await eventually_async(lambda: h.state.delivery_attempts([events[0].id]), 10)
        (attempt, *_) = await h.state.delivery_attempts([events[0].id])
    assert state is not None and state.last_error is not None
    assert (
        attempt.answer
        == f"POST {receiver.base_url}/hook answered 500: bad [REDACTED] for ?[REDACTED]"
    )
    for secret in ("query-secret-123456", "header-secret-123456", SECRET, ROLLED):
        assert secret not in state.last_error
        assert secret not in attempt.answer
    assert state.last_error.startswith(f"POST {receiver.base_url}/hook answered 500")
