"""The poller against fake providers: schedule, stop reasons, limits, leases, pauses."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from dlrhub.config import Config
from dlrhub.event import Status
from dlrhub.outbound.poller import Poller
from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.providers.uvox.fake import FakeUvox
from dlrhub.testing.faults import Fault
from tests.outbound.conftest import Clock, Stores, all_events, outbound_config
from tests.waiting import eventually_async


def onurix_account(fake: FakeOnurix, base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "onx",
        "provider": "onurix",
        "base_url": f"{base}/api/v1",
        "client": fake.client,
        "key": fake.key,
        **extra,
    }


def uvox_account(fake: FakeUvox, base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "uvx",
        "provider": "uvox",
        "base_url": f"{base}/api/get-api/v1",
        "accountnumber": fake.accountnumber,
        "apikey": fake.apikey,
        **extra,
    }


async def polled_until_stopped(config: Config, stores: Stores, account: str, *ids: str) -> None:
    poller = Poller(config, stores.store, stores.tracking)
    await poller.start()

    async def stopped() -> bool:
        rows = [await stores.tracking.find(account, message_id) for message_id in ids]
        return all(row is not None and row.stopped_reason for row in rows)

    try:
        await eventually_async(stopped)
    finally:
        await poller.stop()


async def test_a_tracked_onurix_message_goes_accepted_sent_delivered_and_stops(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.progression = ("Enviado", "Entregado")  # Entregado from 0.5 s after the send
    # Polls 50 ms after the send (Enviado) and 1 s after that (Entregado).
    config = outbound_config(stores, [onurix_account(fake, base)], multiplier=20)
    outbound = Outbound(config, stores.store, stores.tracking)
    (sent,) = await outbound.send("onx", ["573150123456"], "Su pedido salió", refs=["order-1"])
    assert sent.status is Status.ACCEPTED and sent.ref == "order-1"
    assert sent.message_id is not None
    await polled_until_stopped(config, stores, "onx", sent.message_id)
    events = await all_events(stores.store, message_id=sent.message_id)
    assert [e.status for e in events] == [Status.ACCEPTED, Status.SENT, Status.DELIVERED]
    assert {e.correlation_id for e in events} == {"order-1"}
    row = await stores.tracking.find("onx", sent.message_id)
    assert row is not None and row.stopped_reason == "final_status" and row.attempts == 2
    queries = len(fake.requests_to("/api/v1/messages-state"))
    assert queries == 2
    state = await stores.store.message("onurix", sent.message_id)
    assert state is not None and state.status is Status.DELIVERED
    await outbound.aclose()


async def test_unchanged_answers_store_nothing_and_intervals_double(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.progression = ("Enviado", "Entregado")
    config = outbound_config(
        stores, [onurix_account(fake, base)], first_interval="10s", max_interval="1h"
    )
    clock = Clock()
    fake.clock, fake.step_seconds = lambda: clock().timestamp(), 100  # polls at 10, 30, 70, 150 s
    message = fake.add_message("573150123456")
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    await outbound.track("onx", [TrackRequest(message.id, ref="r-1")])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    due_times = []
    for _ in range(4):
        row = await stores.tracking.find("onx", message.id)
        assert row is not None and row.next_poll_at is not None
        due_times.append(row.next_poll_at)
        clock.moment = row.next_poll_at
        assert await poller.run_once() == 1
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(due_times)]
    assert gaps == [20.0, 40.0, 80.0]
    events = await all_events(stores.store, message_id=message.id)
    assert [e.provider_status for e in events] == ["Enviado", "Entregado"]
    assert events[0].correlation_id == "r-1"  # filled from the tracking row
    await poller.close()


async def test_uvox_no_credit_holds_then_sent_stops_and_unknown_id_gives_up(
    uvox: tuple[FakeUvox, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = uvox
    config = outbound_config(stores, [uvox_account(fake, base, sender="UVox")], unknown_id_limit=3)
    clock = Clock()
    fake.clock, fake.step_seconds = lambda: clock().timestamp(), 8
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    fake.no_credit = True
    (sent,) = await outbound.send("uvx", ["13058888888"], "Hola", refs=["u-1"])
    assert (sent.status, sent.provider_status) == (Status.QUEUED, "009")
    assert sent.message_id is not None
    await outbound.track("uvx", [TrackRequest("999")])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    for _ in range(3):
        clock.advance(5)
        await poller.run_once()
    row = await stores.tracking.find("uvx", sent.message_id)
    assert row is not None and row.stopped_reason is None and row.provider_status == "012"
    lost = await stores.tracking.find("uvx", "999")
    assert lost is not None and lost.stopped_reason == "unknown_id" and lost.attempts == 3
    assert [e.provider_status for e in await all_events(stores.store, message_id="999")] == ["010"]
    fake.no_credit = False
    for _ in range(2):
        clock.advance(5)
        await poller.run_once()
    row = await stores.tracking.find("uvx", sent.message_id)
    assert row is not None and row.stopped_reason == "provider_final"
    events = await all_events(stores.store, message_id=sent.message_id)
    assert [(e.status, e.provider_status) for e in events] == [
        (Status.QUEUED, "009"),
        (Status.QUEUED, "012"),
        (Status.QUEUED, "011"),
        (Status.SENT, "013"),
    ]
    assert events[1].extra["reason"] == "no_credit"
    await poller.close()
    await outbound.aclose()


async def test_max_age_stops_without_asking(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base)], max_age="72h")
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    old = fake.add_message("573150123456")
    await outbound.track("onx", [TrackRequest(old.id, sent_at=clock() - timedelta(hours=73))])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    assert await poller.run_once() == 1
    row = await stores.tracking.find("onx", old.id)
    assert row is not None and row.stopped_reason == "max_age"
    assert fake.requests_to("/api/v1/messages-state") == []
    await poller.close()


async def test_rate_limit_is_respected(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base, rate_limit=10, concurrency=8)])
    outbound = Outbound(config, stores.store, stores.tracking)
    ids = [fake.add_message(f"5731500{i:05d}").id for i in range(25)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    poller = Poller(config, stores.store, stores.tracking)
    await poller.open()
    started = time.monotonic()
    assert await poller.run_once() == 25
    elapsed = time.monotonic() - started
    assert fake.max_requests_per_second("/api/v1/messages-state") <= 11
    assert elapsed >= 2.3  # 25 requests spaced 100 ms apart
    await poller.close()


async def test_429_above_6_a_second_slows_the_account_and_every_message_is_settled(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.progression = ("Enviado", "Entregado")
    fake.inject(Fault("throttle", "/api/v1/messages-state", times=10_000, seconds=1, per_second=6))
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=8)])
    outbound = Outbound(config, stores.store, stores.tracking)
    ids = [fake.add_message(f"5731500{i:05d}").id for i in range(15)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    await polled_until_stopped(config, stores, "onx", *ids)
    rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
    assert {row.stopped_reason for row in rows if row is not None} == {"final_status"}
    # Every attempt was a real answer (the 429s are not attempts) and none was a miss; how
    # many each message needed depends on time, as the time-based fake's states do.
    assert all(
        row is not None
        and row.misses == 0
        and row.attempts == len(fake.messages[row.message_id].answers) >= 1
        for row in rows
    )
    throttled = fake.requests_to("/api/v1/messages-state")
    assert len(throttled) > 30  # some were answered 429: the test saw back-pressure
    await outbound.aclose()


async def test_429_holds_the_account_for_retry_after_and_keeps_the_schedule(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.inject(Fault("throttle", "/api/v1/messages-state", times=1, seconds=120, per_second=0))
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=1)])
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    ids = [fake.add_message(f"57315000000{i}").id for i in range(3)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    clock.advance(1)
    assert await poller.run_once() == 3
    assert len(fake.requests_to("/api/v1/messages-state")) == 1  # the others held
    rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
    for row in rows:
        assert row is not None and (row.attempts, row.misses, row.stopped_reason) == (0, 0, None)
        assert row.next_poll_at == clock() + timedelta(seconds=120)
    clock.advance(60)
    assert await poller.run_once() == 0  # still held: nothing claimed, nothing asked
    assert len(fake.requests_to("/api/v1/messages-state")) == 1
    clock.advance(61)
    assert await poller.run_once() == 3
    assert len(fake.requests_to("/api/v1/messages-state")) == 4  # throttle is over
    rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
    assert all(row is not None and (row.attempts, row.misses) == (1, 0) for row in rows)
    await poller.close()
    await outbound.aclose()


async def test_onurix_520_about_the_key_pauses_and_about_the_id_gives_up(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=1)])
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    (message_id,) = [fake.add_message("573150000001").id]
    await outbound.track("onx", [TrackRequest(message_id)])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    body = b'{"error": "520", "msg": "Credenciales invalidas"}'
    fake.inject(Fault("status", "/api/v1/messages-state", status=520, body=body))
    assert await poller.run_once() == 1
    (pause,) = await stores.tracking.pauses()
    assert "Credenciales invalidas" in pause.reason
    assert len(fake.requests_to("/api/v1/messages-state")) == 1  # not retried
    assert await stores.tracking.resume("onx")
    body = b'{"error": "520", "msg": "Mensaje no encontrado"}'
    fake.inject(Fault("status", "/api/v1/messages-state", status=520, body=body, times=3))
    for _ in range(3):
        clock.advance(3600)
        assert await poller.run_once() == 1
    row = await stores.tracking.find("onx", message_id)
    assert row is not None and row.stopped_reason == "unknown_id" and row.misses == 3
    assert len(fake.requests_to("/api/v1/messages-state")) == 4
    await poller.close()
    await outbound.aclose()


async def test_an_auth_error_pauses_the_account_until_resumed(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.refuse_credentials_with = 401  # the document shows 520; this is the 401 mode
    config = outbound_config(stores, [onurix_account(fake, base, key="wrong-key-0123")])
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    ids = [fake.add_message(f"57315000000{i}").id for i in range(5)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    await poller.run_once()
    asked = len(fake.requests_to("/api/v1/messages-state"))
    assert 1 <= asked <= 4  # only the requests already in flight (concurrency 4)
    (pause,) = await stores.tracking.pauses()
    assert pause.account == "onx" and "401" in pause.reason
    for _ in range(3):
        clock.advance(60)
        assert await poller.run_once() == 0
    assert len(fake.requests_to("/api/v1/messages-state")) == asked
    rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
    assert all(row is not None and row.attempts == 0 for row in rows)  # nothing counted
    assert await stores.tracking.resume("onx")
    await poller.run_once()
    assert len(fake.requests_to("/api/v1/messages-state")) > asked  # tried again: refused again
    assert len(await stores.tracking.pauses()) == 1
    await poller.close()


async def test_two_pollers_never_poll_the_same_message_at_once(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.latency = 0.01
    fake.progression = ("Enviado", "Entregado")
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=8)], batch_size=10)
    clock = Clock()  # the pollers' and the fake's: each poll sees the state the test expects
    fake.clock = lambda: clock().timestamp()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    ids = [fake.add_message(f"5731501{i:05d}").id for i in range(60)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    first = Poller(config, stores.store, owner="poller-a", now=clock)
    second = Poller(config, stores.store, owner="poller-b", now=clock)
    await first.start()
    await second.start()

    async def polled_once() -> bool:
        rows = [await stores.tracking.find("onx", message_id) for message_id in ids]
        return all(row is not None and row.attempts == 1 for row in rows)

    async def all_stopped() -> bool:
        summaries = await stores.tracking.summaries(clock())
        return summaries[0].polling == 0

    try:
        clock.advance(0.05)  # every message due once: Enviado
        await eventually_async(polled_once, 20)
        clock.advance(1000)  # due again, and past the fake's step: Entregado
        await eventually_async(all_stopped, 20)
    finally:
        await first.stop()
        await second.stop()
    assert sorted(message.queries for message in fake.messages.values()) == [2] * 60
    assert first.metrics.polls.labels("onx", "answered")._value.get() > 0
    assert second.metrics.polls.labels("onx", "answered")._value.get() > 0


async def test_a_killed_poller_keeps_its_schedule(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.progression = ("Enviado",)
    settings: dict[str, Any] = {"first_interval": "1s", "max_interval": "1h", "lease": "30s"}
    config = outbound_config(stores, [onurix_account(fake, base)], **settings)
    small_batches = outbound_config(stores, [onurix_account(fake, base)], batch_size=2, **settings)
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    ids = [fake.add_message(f"5731502{i:05d}").id for i in range(4)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    # The first poller polls two messages, then claims the other two and dies holding them.
    first = Poller(small_batches, stores.store, stores.tracking, now=clock, owner="first")
    await first.open()
    assert await first.run_once() == 2
    held = await stores.tracking.claim_due(
        "onx", clock(), 10, "first", clock() + timedelta(seconds=30)
    )
    assert len(held) == 2
    await first.close()  # killed: the claimed rows are never completed

    second = Poller(config, stores.store, stores.tracking, now=clock, owner="second")
    await second.open()
    assert await second.run_once() == 0  # nothing due: schedule kept, leases held
    clock.advance(2)  # the first two are due again (first poll + 2 s)
    assert await second.run_once() == 2
    for message_id in ids[:2]:
        row = await stores.tracking.find("onx", message_id)
        assert row is not None and row.attempts == 2  # the count went on, not restarted
        assert row.next_poll_at == clock() + timedelta(seconds=4)
    clock.advance(29)  # the dead poller's lease is over
    assert await second.run_once() == 4
    for message_id in ids[2:]:
        row = await stores.tracking.find("onx", message_id)
        assert row is not None and row.attempts == 1
    await second.close()


async def test_no_message_is_queried_after_its_final_answer(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    """Against the time-based fake (Pendiente, Enviado, Entregado, 0.2 s apart), count the
    state queries per message: each reaches Entregado and is never asked again after it."""
    fake, base = onurix
    fake.step_seconds = 0.2
    config = outbound_config(stores, [onurix_account(fake, base, concurrency=8)])
    outbound = Outbound(config, stores.store, stores.tracking)
    ids = [fake.add_message(f"5731503{i:05d}").id for i in range(30)]
    await outbound.track("onx", [TrackRequest(message_id) for message_id in ids])
    await polled_until_stopped(config, stores, "onx", *ids)

    asked = Counter(
        parse_qs(request.query)["id"][0] for request in fake.requests_to("/api/v1/messages-state")
    )
    for message_id in ids:
        row = await stores.tracking.find("onx", message_id)
        assert row is not None and row.stopped_reason == "final_status"
        state = await stores.store.message("onurix", message_id)
        assert state is not None and state.status is Status.DELIVERED
        answers = fake.messages[message_id].answers
        assert asked[message_id] == len(answers) == row.attempts
        assert [a.state for a in answers][-1] == "Entregado" and answers[-1].final
        assert fake.messages[message_id].timeline.queried_after_final() == 0, (
            f"{message_id} asked {asked[message_id]} times: {[a.state for a in answers]}"
        )
    assert set(asked) == set(ids)


async def test_outages_timeouts_and_unreadable_answers_never_count_toward_unknown_id(
    onurix: tuple[FakeOnurix, str], stores: Stores, tmp_path: Any
) -> None:
    fake, base = onurix
    fake.progression = ("Entregado",)
    account = onurix_account(fake, base, concurrency=1, retries=0, timeout="200ms")
    config = outbound_config(stores, [account], unknown_id_limit=2)
    clock = Clock()
    outbound = Outbound(config, stores.store, stores.tracking, now=clock)
    message = fake.add_message("573150000001")
    await outbound.track("onx", [TrackRequest(message.id)])
    poller = Poller(config, stores.store, stores.tracking, now=clock)
    await poller.open()
    path = "/api/v1/messages-state"
    for fault in (
        Fault("status", path, status=500),
        Fault("status", path, status=502, body=b"<html>Bad Gateway</html>"),
        Fault("status", path, status=404, body=b"<html>Not Found</html>"),
        Fault("status", path, status=520),  # "Error interno del sistema": an outage
        Fault("malformed", path),
        Fault("delay", path, seconds=0.5),
        Fault("throttle", path, seconds=1, per_second=0),
    ):
        fake.inject(fault)
        clock.advance(3600)
        assert await poller.run_once() == 1
        row = await stores.tracking.find("onx", message.id)
        assert row is not None and (row.misses, row.stopped_reason) == (0, None), fault
    clock.advance(3600)
    assert await poller.run_once() == 1
    row = await stores.tracking.find("onx", message.id)
    assert row is not None and row.stopped_reason == "final_status"
    await poller.close()
    await outbound.aclose()
