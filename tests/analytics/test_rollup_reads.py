"""`delivery_sums`: whole days plus hour edges add up as the hours do, for any range."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.analytics.facts import BREAKDOWN, DAY_US, HOUR_US
from dlrhub.analytics.figures import DeliveryQuery, Sums
from dlrhub.event import epoch_micros
from dlrhub.store import SQLStore
from dlrhub.store.rollup_reads import ENGAGEMENT_BREAKDOWN, segments
from dlrhub.store.rollups import COUNTERS
from tests.analytics.model import expected_tables
from tests.analytics.stores import BACKENDS, PLACE, Tables, fresh_store
from tests.analytics.test_rebuild import DAY0, traffic, write_all

START = epoch_micros(DAY0)
Plain = dict[tuple[Any, ...], tuple[dict[str, int], dict[int, int], dict[Any, int], dict[str, int]]]


@pytest.fixture(params=BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def written(backend: str, tmp_path: Path) -> AsyncIterator[tuple[SQLStore, Tables]]:
    """A store holding four days of traffic, and the rollups a recount gives."""
    async with fresh_store(backend, tmp_path) as store:
        stored = await write_all(store, traffic(seed=3, messages=150))
        yield store, expected_tables(stored, PLACE)


def plain(groups: dict[tuple[Any, ...], Sums]) -> Plain:
    """Sums without their zero entries, comparable with ==."""
    found: Plain = {}
    for key, sums in groups.items():
        parts = (
            {k: v for k, v in sums.counters.items() if v},
            {k: v for k, v in sums.latency.items() if v},
            {k: v for k, v in sums.reasons.items() if v},
            {k: v for k, v in sums.engagement.items() if v},
        )
        if any(parts):
            found[key] = parts
    return found


def recount(tables: Tables, query: DeliveryQuery) -> Plain:
    """The query's sums from the recount's hour rows alone."""
    start = query.from_us // HOUR_US * HOUR_US
    end = -(-query.to_us // HOUR_US) * HOUR_US
    allowed = dict(query.filters)
    groups: dict[tuple[Any, ...], Sums] = {}

    def group(period: int, values: dict[str, str]) -> Sums | None:
        if not start <= period < end:
            return None
        if any(values.get(name) not in options for name, options in allowed.items()):
            return None
        bucket = {"hour": period, "day": period // DAY_US * DAY_US, None: None}[query.bucket]
        key = (bucket, *(values[name] for name in query.group_by))
        return groups.setdefault(key, Sums(reasons=Counter(), engagement=Counter()))

    def hour_rows(table: str, width: int) -> Any:
        for key, value in tables[table].items():
            if key[0] == "hour":
                yield key[1], dict(zip(BREAKDOWN, key[2:8], strict=True)), key[8:width], value

    for period, values, _, row in hour_rows("delivery_rollups", 8):
        if (sums := group(period, values)) is not None:
            for name, value in zip(COUNTERS, row, strict=True):
                sums.counters[name] = sums.counters.get(name, 0) + value
    for period, values, (bucket,), count in hour_rows("delivery_latency", 9):
        if (sums := group(period, values)) is not None:
            sums.latency[bucket] = sums.latency.get(bucket, 0) + count
    for period, values, reason, count in hour_rows("delivery_reasons", 11):
        if (sums := group(period, values)) is not None:
            sums.reasons[reason] += count
    if all(name in ENGAGEMENT_BREAKDOWN for name in (*query.group_by, *allowed)):
        for (grain, period, *values, kind), count in tables["engagement_rollups"].items():
            if grain == "hour":
                named = dict(zip(ENGAGEMENT_BREAKDOWN, values, strict=True))
                if (sums := group(period, named)) is not None:
                    sums.engagement[kind] += count
    return plain(groups)


moments = st.integers(START - DAY_US, START + 5 * DAY_US)
queries = st.builds(
    lambda ends, group_by, bucket, filters: DeliveryQuery(
        min(ends), max(ends), tuple(group_by), bucket, tuple(filters)
    ),
    st.tuples(
        moments,
        moments
        | st.integers(START - DAY_US, START + 5 * DAY_US).map(lambda us: us // DAY_US * DAY_US),
    ),
    st.lists(st.sampled_from(BREAKDOWN), unique=True, max_size=2),
    st.sampled_from([None, "hour", "day"]),
    st.lists(
        st.sampled_from(
            [
                ("provider", ("onurix",)),
                ("source", ("office", "nrs360")),
                ("country", ("ES",)),
                ("country", ("CO", "MX")),
                ("operator", ("",)),
                ("channel", ("sms",)),
            ]
        ),
        max_size=2,
        unique_by=lambda item: item[0],
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries)
async def test_a_range_read_as_days_and_edge_hours_sums_as_its_hours(
    written: tuple[SQLStore, Tables], query: DeliveryQuery
) -> None:
    store, tables = written
    assert plain(await store.delivery_sums(query)) == recount(tables, query)


def test_segments_cover_the_whole_hours_once_with_days_where_they_fit() -> None:
    day = START
    query = DeliveryQuery(day - 2 * HOUR_US + 5, day + 2 * DAY_US + 1)
    assert segments(query) == [
        ("hour", day - 2 * HOUR_US, day),
        ("day", day, day + 2 * DAY_US),
        ("hour", day + 2 * DAY_US, day + 2 * DAY_US + HOUR_US),
    ]
    assert segments(DeliveryQuery(day, day + DAY_US, bucket="hour")) == [
        ("hour", day, day + DAY_US)
    ]
    assert segments(DeliveryQuery(day + HOUR_US, day + 3 * HOUR_US)) == [
        ("hour", day + HOUR_US, day + 3 * HOUR_US)
    ]
    assert segments(DeliveryQuery(day, day)) == []


async def test_grouped_and_filtered_figures_of_a_known_day(
    written: tuple[SQLStore, Tables],
) -> None:
    store, tables = written
    query = DeliveryQuery(
        START, START + DAY_US, group_by=("provider", "country"), filters=(("country", ("ES",)),)
    )
    found = await store.delivery_sums(query)
    assert found and {key[2] for key in found} == {"ES"} and {key[0] for key in found} == {None}
    assert {key[1] for key in found} <= {"nrs360", "onurix"}
    day_rows = [
        row
        for key, row in tables["delivery_rollups"].items()
        if key[:2] == ("day", START) and key[6] == "ES"
    ]
    assert sum(sums.counters["messages"] for sums in found.values()) == sum(
        row[0] for row in day_rows
    )


def test_an_unknown_breakdown_is_refused() -> None:
    with pytest.raises(ValueError, match="not a breakdown: recipient"):
        DeliveryQuery(0, HOUR_US, group_by=("recipient",))
    with pytest.raises(ValueError, match="not a breakdown: status"):
        DeliveryQuery(0, HOUR_US, filters=(("status", ("failed",)),))
