"""Every method of the sink state, and its fencing, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dlrhub.event import Event
from dlrhub.store import EventFilter
from dlrhub.store.sink_leases import SinkLeases
from dlrhub.store.sink_state import AttemptOutcome, DeliveryAttempt, Fence, LeaseLost, RetryCount
from dlrhub.store.sink_state_sql import SQLSinkState
from tests.sinks.conftest import Harness, harness, ingest, make_events, sink_config

SINK = '[[sinks]]\nname = "print"\nkind = "stdout"\n'


@pytest.fixture
async def h(tmp_path: Path, store_toml: str) -> AsyncIterator[Harness]:
    async with harness(sink_config(tmp_path, SINK, store=store_toml)) as opened:
        await ingest(opened.store, make_events(10))
        yield opened


def leases(h: Harness, owner: str, seconds: float = 30.0) -> SinkLeases:
    assert isinstance(h.state, SQLSinkState)
    return SinkLeases(h.state.database, owner, seconds)


async def test_cursor_counts_and_control(h: Harness) -> None:
    state = h.state
    assert await state.state("print") is None
    created = await state.ensure("print", start_after=3)
    assert (created.after_seq, created.paused, created.delivered) == (3, False, 0)
    assert (await state.ensure("print", start_after=9)).after_seq == 3  # created once
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    await state.advance("print", 7, delivered=4, delivered_at=moment)
    await state.advance("print", 5, delivered=1, delivered_at=None)  # never back
    await state.count_delivered("print", 2, moment + timedelta(seconds=1))
    current = await state.state("print")
    assert current is not None
    assert (current.after_seq, current.delivered) == (7, 7)
    assert current.last_delivered_at == moment + timedelta(seconds=1)
    await state.record_error("print", "answered 503", moment)
    await state.set_paused("print", True)
    await state.disable("print", "answered 410")
    current = await state.state("print")
    assert current is not None
    assert (current.paused, current.disabled_reason, current.last_error) == (
        True,
        "answered 410",
        "answered 503",
    )
    await state.set_paused("print", False)  # resuming re-enables too
    (listed,) = await state.states()
    assert (listed.sink, listed.paused, listed.disabled_reason) == ("print", False, None)


async def test_dead_letters_replays_and_retry_counts(h: Harness) -> None:
    state = h.state
    await state.ensure("print", start_after=0)
    events = await h.store.events(EventFilter(limit=4))
    ids = [await state.add_dead_letter("print", event, "answered 400", 1) for event in events]
    assert len(set(ids)) == 4
    letters = await state.dead_letters("print")
    assert [letter.event.id for letter in letters] == [event.id for event in events]
    assert letters[0].event.seq == events[0].seq
    assert await state.request_retry("print", [ids[0], ids[1]]) == 2
    assert [x.id for x in await state.dead_letters("print", state="retry")] == ids[:2]
    assert (await state.state("print")).retries_pending == 2  # type: ignore[union-attr]
    await state.resolve_dead_letter(ids[0])
    await state.fail_dead_letter(ids[1], "answered 500", 2)
    (failed,) = await state.dead_letters("print", after_id=ids[0], limit=1)
    assert (failed.state, failed.error, failed.attempts) == ("dead", "answered 500", 3)
    assert await state.request_retry("print", []) == 0
    assert await state.drop_dead_letters("print", [ids[2]]) == 1
    assert await state.drop_dead_letters("print", None) == 2
    assert await state.dead_letters("print") == []

    job = await state.add_replay("print", 2, 8)
    assert await state.replays("print") == [job]
    await state.advance_replay(job.id, 5)
    assert (await state.replays("print"))[0].after_seq == 5
    await state.advance_replay(job.id, 8)
    assert await state.replays("print") == []

    await state.save_retry_count("print", 3, RetryCount(2, 1000.5))
    await state.save_retry_count("print", 3, RetryCount(3, 1000.5))
    await state.save_retry_count("print", 6, RetryCount(1, 2000.0))
    assert await state.retry_counts("print") == {3: RetryCount(3, 1000.5), 6: RetryCount(1, 2000.0)}
    await state.forget_retry_count("print", 6)
    await state.advance("print", 4, delivered=0, delivered_at=None)  # past seq 3
    assert await state.retry_counts("print") == {}


def attempt_at(
    event: Event, attempt: int, outcome: AttemptOutcome, at: datetime, sink: str = "print"
) -> DeliveryAttempt:
    answer = None if outcome == "delivered" else f"answered 500 ({attempt})"
    return DeliveryAttempt(sink, event.seq, event.id, attempt, at, outcome, 12.5, answer)


async def test_delivery_attempts_are_kept_and_read_in_time_order(h: Harness) -> None:
    state = h.state
    await state.ensure("print", start_after=0)
    first, second, third = await h.store.events(EventFilter(limit=3))
    moment = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    later = moment + timedelta(seconds=1)
    failed = [attempt_at(e, 1, "retrying", moment) for e in (first, second)]
    await state.record_attempts(failed)
    await state.record_attempts([])
    # A delivered batch's rows ride with the cursor's move.
    delivered = [attempt_at(e, 2, "delivered", later) for e in (first, second)]
    await state.advance("print", second.seq, delivered=2, delivered_at=later, attempts=delivered)
    other = attempt_at(first, 1, "given_up", moment + timedelta(milliseconds=5), "hook")
    await state.record_attempts([other])
    await state.record_attempts([attempt_at(third, 1, "unavailable", moment)])

    found = await state.delivery_attempts([first.id, second.id])
    assert found == [failed[0], failed[1], other, delivered[0], delivered[1]]
    assert found[0].at == moment  # to the microsecond
    assert found[-1].to_dict() == {
        "sink": "print",
        "seq": second.seq,
        "event_id": second.id,
        "attempt": 2,
        "at": "2026-12-01T10:00:01.123456Z",
        "outcome": "delivered",
        "duration_ms": 12.5,
        "answer": None,
    }
    assert await state.delivery_attempts([]) == []
    assert await state.delivery_attempts(["no-such-event"]) == []
    many = [f"id-{n}" for n in range(1200)] + [third.id]  # more than one IN (...) on SQLite
    assert [a.outcome for a in await state.delivery_attempts(many)] == ["unavailable"]


async def test_a_stale_fencing_token_cannot_move_the_cursor(h: Harness) -> None:
    state = h.state
    await state.ensure("print", start_after=0)
    first, second = leases(h, "worker-a", 0.01), leases(h, "worker-b")
    token_a = await first.acquire("print")
    assert token_a is not None
    old = Fence("worker-a", token_a)
    await state.advance("print", 2, delivered=2, delivered_at=None, fence=old)
    await first.release("print", token_a)
    token_b = await second.acquire("print")  # released: taken at once
    assert token_b == token_a + 1
    (event,) = await h.store.events(EventFilter(after_seq=4, limit=1))
    with pytest.raises(LeaseLost):
        await state.advance("print", 9, delivered=7, delivered_at=None, fence=old)
    with pytest.raises(LeaseLost):
        await state.add_dead_letter("print", event, "answered 400", 1, fence=old)
    with pytest.raises(LeaseLost):
        await state.count_delivered("print", 1, datetime.now(UTC), fence=old)
    with pytest.raises(LeaseLost):
        await state.save_retry_count("print", 5, RetryCount(1, 1.0), fence=old)
    stale = attempt_at(event, 1, "delivered", datetime.now(UTC))
    with pytest.raises(LeaseLost):
        await state.record_attempts([stale], fence=old)
    with pytest.raises(LeaseLost):
        await state.advance("print", 9, delivered=1, delivered_at=None, fence=old, attempts=[stale])
    assert await state.delivery_attempts([event.id]) == []  # a stale worker recorded nothing
    job = await state.add_replay("print", 0, 8)
    with pytest.raises(LeaseLost):
        await state.advance_replay(job.id, 8, fence=old)
    letter_id = await state.add_dead_letter("print", event, "answered 400", 1)
    with pytest.raises(LeaseLost):
        await state.resolve_dead_letter(letter_id, fence=old)
    current = await state.state("print")
    assert current is not None
    assert (current.after_seq, current.delivered, current.dead_letters) == (2, 2, 1)
    assert current.lease_owner == "worker-b"
    assert (await state.replays("print"))[0].after_seq == 0
    assert await state.retry_counts("print") == {}
    new = Fence("worker-b", token_b)
    await state.advance("print", 9, delivered=7, delivered_at=None, fence=new)
    await state.record_attempts([stale], fence=new)
    assert await state.delivery_attempts([event.id]) == [stale]
    await state.advance_replay(job.id, 8, fence=new)
    await state.resolve_dead_letter(letter_id, fence=new)
    current = await state.state("print")
    assert current is not None
    assert (current.after_seq, current.dead_letters, current.replays_pending) == (9, 0, 0)


async def test_leases_are_taken_when_free_expired_or_own(h: Harness) -> None:
    short, other = leases(h, "worker-a", 0.2), leases(h, "worker-b")
    token = await short.acquire("print")
    assert token == 1
    assert await other.acquire("print") is None  # held
    assert await short.acquire("print") == 2  # its own: a new token
    assert await short.renew({"print": 2}) == {"print"}
    assert await short.renew({"print": 1}) == set()  # stale
    assert await other.heartbeat() == 1
    assert await short.heartbeat() == 2
    await short.leave()
    assert await other.heartbeat() == 1
    taken = None
    while taken is None:  # the database's clock runs out the 0.2 s lease
        taken = await other.acquire("print") or await asyncio.sleep(0.05)
    assert taken == 3
    assert await short.renew({"print": 2}) == set()
