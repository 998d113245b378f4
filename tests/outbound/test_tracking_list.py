"""The tracking store's list (`tracked`) and in-flight count, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlrhub.event import Status
from dlrhub.store.sql_statements import Execute, Fetch, Transaction
from dlrhub.store.tracking import NewTracking, PollOutcome, TrackingFilter
from dlrhub.store.tracking_sql import tracked_query
from tests.outbound.conftest import Stores

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def fill(stores: Stores) -> None:
    """onx: m0..m4 polled (m0, m1 due), m5 stopped final_status, m6 unknown_id; uvx: u0."""
    rows = [
        NewTracking("onx", "onurix", f"m{n}", NOW, next_poll_at=NOW + timedelta(minutes=n - 1))
        for n in range(5)
    ]
    rows += [
        NewTracking(
            "onx", "onurix", "m5", NOW, status=Status.DELIVERED, stopped_reason="final_status"
        ),
        NewTracking("onx", "onurix", "m6", NOW, stopped_reason="unknown_id"),
        NewTracking("uvx", "uvox", "u0", NOW, next_poll_at=NOW),
    ]
    assert await stores.tracking.add(rows) == len(rows)


async def ids(stores: Stores, **query: Any) -> list[str]:
    return [row.message_id for row in await stores.tracking.tracked(TrackingFilter(**query))]


async def test_tracked_filters_and_pages_by_id(stores: Stores) -> None:
    await fill(stores)
    assert await ids(stores) == ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "u0"]
    assert await ids(stores, account="onx", state="active") == ["m0", "m1", "m2", "m3", "m4"]
    assert await ids(stores, account="onx", state="stopped") == ["m5", "m6"]
    assert await ids(stores, stopped_reason="unknown_id") == ["m6"]
    assert await ids(stores, status=Status.DELIVERED) == ["m5"]
    first = await stores.tracking.tracked(TrackingFilter(account="onx", limit=2))
    assert [row.message_id for row in first] == ["m0", "m1"]
    assert await ids(stores, account="onx", after_id=first[-1].id, limit=2) == ["m2", "m3"]
    assert await ids(stores, account="nobody") == []


async def test_summaries_count_rows_in_flight(stores: Stores) -> None:
    await fill(stores)
    claimed = await stores.tracking.claim_due(
        "onx", NOW, 1, "poller-1", NOW + timedelta(seconds=120)
    )
    assert [row.message_id for row in claimed] == ["m0"]
    (onx, uvx) = await stores.tracking.summaries(NOW)
    assert (onx.account, onx.polling, onx.due, onx.in_flight) == ("onx", 5, 1, 1)
    assert onx.stopped == {"final_status": 1, "unknown_id": 1}
    assert (uvx.polling, uvx.due, uvx.in_flight) == (1, 1, 0)
    later = NOW + timedelta(seconds=121)  # the lease ran out: due again, not in flight
    (onx, _) = await stores.tracking.summaries(later)
    assert onx.in_flight == 0
    outcome = PollOutcome(claimed[0].id, Status.SENT, "sent", None, 1, 0, NOW + timedelta(hours=1))
    await stores.tracking.complete([outcome], "poller-1", NOW)
    (onx, _) = await stores.tracking.summaries(NOW)
    assert onx.in_flight == 0


@pytest.mark.parametrize(
    "query",
    [
        TrackingFilter(account="onx", state="active"),
        TrackingFilter(account="onx", stopped_reason="unknown_id"),
        TrackingFilter(account="onx", stopped_reason="unknown_id", after_id=5),
    ],
)
async def test_an_accounts_list_by_state_or_reason_uses_its_index(
    stores: Stores, query: TrackingFilter
) -> None:
    # The rows asked for are rare, as in a store in use: most rows stopped long ago.
    reasons = [None, "unknown_id", *["final_status"] * 98]
    rows = [
        NewTracking(
            account,
            "onurix",
            f"{account}-{n}",
            NOW,
            next_poll_at=NOW,
            stopped_reason=reasons[n % len(reasons)],
        )
        for account in ("onx", "other", "third")
        for n in range(2000)
    ]
    await stores.tracking.add(rows)
    sql, params = tracked_query(query)
    database = stores.tracking.database
    await database.transact(_analyze())
    if database.dialect.name == "postgres":  # an empty table is scanned whatever the indexes
        plan = await database.transact(_plan_without_seq_scans(sql, params))
    else:
        plan = await database.read(f"EXPLAIN QUERY PLAN {sql}", params)
    text = " ".join(str(column) for row in plan for column in row)
    assert "tracked_by_reason" in text, text
    assert "TEMP B-TREE" not in text, text  # SQLite reads them in id order
    # (PostgreSQL sorts what the index found for `IS NULL`: the rows asked for only.)


def _plan_without_seq_scans(sql: str, params: list[Any]) -> Transaction[list[tuple[Any, ...]]]:
    yield Execute("SET LOCAL enable_seqscan = off")
    return (yield Fetch(f"EXPLAIN {sql}", params))


def _analyze() -> Transaction[None]:
    """Statistics, as a store in use has them (the planner's choice depends on them)."""
    yield Execute("ANALYZE tracked_messages")
