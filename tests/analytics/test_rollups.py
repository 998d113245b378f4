"""The rollups the store keeps while writing equal a rebuild's and a plain recount's.

On both backends: message events in any order of time, duplicated callbacks,
late receipts across hours and days, engagement, written in any batch split
and in concurrent writes that the group commit batches together, rolled up in
pages of any size (the writer rolls up after answering a batch, a page at a time).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.store import Accept, SQLStore
from tests.analytics.model import expected_tables
from tests.analytics.stores import BACKENDS, PLACE, fresh_store, rollup_tables
from tests.payloads import T0, raw


@dataclass(frozen=True)
class Callback:
    body: str  # the dedupe key: the same body twice is one callback, stored once
    events: tuple[Event, ...]

    def raw(self) -> RawCallback:
        return raw(self.body, self.events[0].source if self.events else "nrs360")


seconds = st.integers(-5, 700) | st.integers(-3 * 86_400, 3 * 86_400)
recipients = st.sampled_from(
    [None, "+573151234567", "3151234567", "+34612345678", "612345678", "ana@example.com", ""]
)


@st.composite
def events(draw: st.DrawFn, number: int) -> Event:
    message = draw(st.sampled_from(["m0", "m1", "m2", "m3"]))
    provider = draw(st.sampled_from(["nrs360", "onurix"]))
    engagement = draw(st.integers(0, 9)) == 0
    occurred = draw(st.none() | seconds)
    status = draw(st.sampled_from(list(Status)))
    error_code = draw(st.sampled_from([None, "30003", 21]))
    return Event(
        id=f"e{number}",
        source=draw(st.sampled_from(["nrs360", "office"])),
        provider=provider,
        type=EventType.MESSAGE_ENGAGEMENT if engagement else EventType.MESSAGE_STATUS,
        received_at=T0 + timedelta(seconds=draw(seconds)),
        channel=draw(st.sampled_from([None, "sms", "email"])),
        message_id=message,
        recipient=draw(recipients),
        sender=draw(st.sampled_from([None, "ACME", "Beta"])),
        status=None if engagement else status,
        provider_status=draw(
            st.sampled_from([None, "Click", "open", "DELIVRD", "UNDELIV", status.value])
        ),
        occurred_at=None if occurred is None else T0 + timedelta(seconds=occurred),
        extra={} if error_code is None else {"error_code": error_code},
    )


@st.composite
def callbacks(draw: st.DrawFn) -> list[list[Callback]]:
    """Groups of callbacks: a group is written concurrently, the groups one after another."""
    count = draw(st.integers(1, 14))
    made: list[Callback] = []
    for number in range(count):
        if made and draw(st.integers(0, 5)) == 0:  # a provider retrying a callback
            made.append(draw(st.sampled_from(made)))
            continue
        size = draw(st.integers(0, 3))
        made.append(
            Callback(f"cb{number}", tuple(draw(events(number * 10 + i)) for i in range(size)))
        )
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(made) - 1)), max_size=4)))
    bounds = [0, *cuts, len(made)]
    return [made[start:end] for start, end in itertools.pairwise(bounds) if end > start]


async def write(store: SQLStore, groups: list[list[Callback]]) -> list[Event]:
    """Write each group at once (the group commit batches it); the events stored, in order."""
    seen: set[str] = set()
    stored: list[Event] = []
    for group in groups:
        futures = [store.submit(Accept(cb.raw(), list(cb.events))) for cb in group]
        results = await asyncio.gather(*futures)
        for callback, result in zip(group, results, strict=True):
            assert result.outcome == ("duplicate" if callback.body in seen else "stored")
            if callback.body not in seen:
                seen.add(callback.body)
                stored += callback.events
    return stored


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(groups=callbacks(), page=st.integers(1, 6))
async def test_rollups_kept_while_writing_equal_a_rebuild_and_a_recount(
    backend: str, tmp_path: Path, groups: list[list[Callback]], page: int
) -> None:
    async with fresh_store(backend, tmp_path) as store:
        store.rollup_page = page
        stored = await write(store, groups)
        expected = expected_tables(stored, PLACE)
        kept = await rollup_tables(store)
        assert kept == expected
        report = await store.rebuild_rollups()
        assert (report.from_us, report.events) == (None, len(stored))
        assert await rollup_tables(store) == expected


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_late_receipt_moves_counts_within_the_cohort_hour(
    backend: str, tmp_path: Path
) -> None:
    """Sent at 10:00, delivered the next day: still 10:00's message, now delivered."""

    def status(event_id: str, state: Status, at: timedelta) -> Event:
        return Event(
            id=event_id,
            source="nrs360",
            provider="nrs360",
            type=EventType.MESSAGE_STATUS,
            received_at=T0 + at,
            message_id="m",
            recipient="+573151234567",
            status=state,
            occurred_at=T0 + at,
        )

    async with fresh_store(backend, tmp_path) as store:
        sent = Callback("a", (status("a", Status.ACCEPTED, timedelta(0)),))
        await write(store, [[sent]])
        late = Callback("b", (status("b", Status.DELIVERED, timedelta(days=1, seconds=3)),))
        await write(store, [[late]])
        tables = await rollup_tables(store)
    hour = int(T0.timestamp()) * 1_000_000
    row = tables["delivery_rollups"][("hour", hour, "nrs360", "nrs360", "", "", "CO", "Movistar")]
    messages, delivered, within_600s, latency_ms = row[0], row[1], row[8], row[9]
    assert (messages, delivered, within_600s, latency_ms) == (1, 1, 0, 86_403_000)
    assert len(tables["delivery_rollups"]) == 2  # that hour and its day, nothing else


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_nul_in_a_message_id_or_sender_counts_once(backend: str, tmp_path: Path) -> None:
    """PostgreSQL stores U+FFFD for NUL: the facts and day cells read back must match."""

    def status(event_id: str, state: Status, minute: int) -> Event:
        return Event(
            id=event_id,
            source="nrs360",
            provider="nrs360",
            type=EventType.MESSAGE_STATUS,
            received_at=T0,
            message_id="m\x001",
            sender="AC\x00ME",
            status=state,
            occurred_at=T0 + timedelta(minutes=minute),
        )

    sent, delivered = status("a", Status.ACCEPTED, 0), status("b", Status.DELIVERED, 2)
    async with fresh_store(backend, tmp_path) as store:
        await write(store, [[Callback("a", (sent,))], [Callback("b", (delivered,))]])
        kept = await rollup_tables(store)
        await store.rebuild_rollups()
        rebuilt = await rollup_tables(store)
    clean = [
        msgspec.structs.replace(e, message_id="m\ufffd1", sender="AC\ufffdME")
        for e in (sent, delivered)
    ]
    assert kept == rebuilt == expected_tables(clean, PLACE)
    assert sum(row[0] for row in kept["delivery_rollups"].values()) == 2  # its hour and day
