"""Reading the delivery rollups: a query's sums per group, never a scan of the events.

A range is read as whole UTC days from the day rows and the hours at either
end from the hour rows (`segments`), so thirty days of one breakdown are about
thirty rows each, whatever the traffic; a cell's time-to-receipt histogram is
one packed row, added up here as one integer per group. Engagement is
kept by provider, source and channel only: a query grouped or filtered by
anything else has none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dlrhub.analytics import histogram
from dlrhub.analytics.facts import DAY_US, HOUR_US
from dlrhub.analytics.figures import DeliveryQuery, Sums
from dlrhub.store.rollups import COUNTERS

Read = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]
GroupKey = tuple[Any, ...]  # (period_us or None, *values of group_by)
ENGAGEMENT_BREAKDOWN = ("provider", "source", "channel")
Segment = tuple[str, int, int]  # grain, from, to


def segments(query: DeliveryQuery) -> list[Segment]:
    """(grain, from, to) ranges covering the query's whole hours, days where they fit."""
    start = query.from_us // HOUR_US * HOUR_US
    end = -(-query.to_us // HOUR_US) * HOUR_US
    if query.bucket == "hour" or end <= start:
        return [("hour", start, end)] if end > start else []
    first_day = -(-start // DAY_US) * DAY_US
    last_day = end // DAY_US * DAY_US
    if first_day >= last_day:
        return [("hour", start, end)]
    parts = [("hour", start, first_day)] if start < first_day else []
    parts.append(("day", first_day, last_day))
    if last_day < end:
        parts.append(("hour", last_day, end))
    return parts


def _period(query: DeliveryQuery) -> str:
    if query.bucket == "hour":
        return "period_us"
    if query.bucket == "day":
        return f"period_us / {DAY_US} * {DAY_US}"
    return "NULL"


def _statement(
    query: DeliveryQuery,
    table: str,
    values: str,
    extra_keys: Sequence[str],
    segment: tuple[str, int, int],
    *,
    grouped: bool = True,
) -> tuple[str, list[Any]]:
    grain, start, end = segment
    keys = [_period(query), *query.group_by, *extra_keys]
    where = ["grain = ?", "period_us >= ?", "period_us < ?"]
    params: list[Any] = [grain, start, end]
    for name, allowed in query.filters:
        where.append(f"{name} IN ({','.join('?' * len(allowed))})")
        params += allowed
    group = ", ".join(keys[1:] if keys[0] == "NULL" else keys)
    sql = (
        f"SELECT {', '.join(keys)}, {values} FROM {table} WHERE {' AND '.join(where)}"  # noqa: S608
        + (f" GROUP BY {group}" if group and grouped else "")
    )
    return sql, params


async def delivery_sums(read: Read, query: DeliveryQuery) -> dict[GroupKey, Sums]:
    """The sums of every group the query's rollup rows fall in."""
    groups: dict[GroupKey, Sums] = {}
    packed: dict[GroupKey, int] = {}  # cells' histograms, added up per group
    width = 1 + len(query.group_by)

    def group(row: tuple[Any, ...]) -> Sums:
        key = (None if row[0] is None else int(row[0]), *(str(v) for v in row[1:width]))
        return groups.setdefault(key, Sums())

    totals = ", ".join(f"sum({name})" for name in COUNTERS)
    for segment in segments(query):
        sql, params = _statement(query, "delivery_rollups", totals, (), segment)
        for row in await read(sql, params):
            sums = group(row)
            for name, value in zip(COUNTERS, row[width:], strict=True):
                sums.counters[name] = sums.counters.get(name, 0) + int(value or 0)
        # One histogram row per cell, merged here by adding packed counts (rollups.py).
        sql, params = _statement(query, "delivery_histograms", "counts", (), segment, grouped=False)
        for row in await read(sql, params):
            key = (None if row[0] is None else int(row[0]), *(str(v) for v in row[1:width]))
            packed[key] = packed.get(key, 0) + histogram.from_bytes(bytes(row[width]))
        reason_keys = ("status", "reason", "error_code")
        sql, params = _statement(query, "delivery_reasons", "sum(count)", reason_keys, segment)
        for row in await read(sql, params):
            reason = (str(row[width]), str(row[width + 1]), str(row[width + 2]))
            group(row).reasons[reason] += int(row[width + 3])
        if all(name in ENGAGEMENT_BREAKDOWN for name in (*query.group_by, *dict(query.filters))):
            sql, params = _statement(query, "engagement_rollups", "sum(count)", ("kind",), segment)
            for row in await read(sql, params):
                group(row).engagement[str(row[width])] += int(row[width + 1])
    for key, value in packed.items():
        sums = groups.setdefault(key, Sums())
        for bucket, count in histogram.unpack(value).items():
            sums.latency[bucket] = sums.latency.get(bucket, 0) + count
    for sums in groups.values():
        sums.latency = {bucket: count for bucket, count in sums.latency.items() if count}
    return {
        key: sums for key, sums in groups.items() if any(sums.counters.values()) or sums.engagement
    }
