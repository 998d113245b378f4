"""A delivery query from request parameters, shared by the API, the console and the CLI.

`from` and `to` are RFC 3339 times (or `-30d`-style offsets from now: `-24h`,
`-7d`, `-90m`); the default is the last 24 hours. `group_by` is a comma list of
breakdowns; `bucket` is `hour` or `day` (none: one figure for the range); any
breakdown name is a filter (`provider=onurix`, `country=CO,MX`). A bad
parameter raises `QueryError` with a sentence for the 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from dlrhub.analytics.facts import BREAKDOWN, DAY_US, HOUR_US
from dlrhub.analytics.figures import Bucket, DeliveryQuery
from dlrhub.event import epoch_micros, parse_time

DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE_US = 400 * DAY_US  # a year and a bit: the day rows make it about 400 rows a group
MAX_FILTER_VALUES = 50
_OFFSET = re.compile(r"^-(\d{1,6})([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class QueryError(ValueError):
    """A parameter of a delivery query is wrong; the message says which and why."""


def read_time(name: str, text: str, now: datetime) -> int:
    offset = _OFFSET.match(text.strip())
    try:
        if offset:  # -999999d is before year 1: an OverflowError, answered as a 400 too
            return epoch_micros(now - timedelta(seconds=int(offset[1]) * _UNITS[offset[2]]))
        return epoch_micros(parse_time(text.strip()))
    except (ValueError, OverflowError):
        raise QueryError(
            f"{name} must be an RFC 3339 time (2026-11-30T00:00:00Z) or an offset such as"
            f" -24h, -7d or -90m, not {text[:40]!r}"
        ) from None


def read_delivery_query(params: Mapping[str, str], now: datetime) -> DeliveryQuery:
    """The `DeliveryQuery` the parameters ask for (unknown parameters are refused)."""
    known = {"from", "to", "group_by", "bucket", "format", "compare", *BREAKDOWN}
    unknown = sorted(set(params) - known)
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
    to_us = read_time("to", params["to"], now) if params.get("to") else epoch_micros(now)
    if params.get("from"):
        from_us = read_time("from", params["from"], now)
    else:
        from_us = to_us - int(DEFAULT_RANGE.total_seconds()) * 1_000_000
    if from_us >= to_us:
        raise QueryError("from must be before to")
    if to_us - from_us > MAX_RANGE_US:
        raise QueryError(f"the range is at most {MAX_RANGE_US // DAY_US} days")
    group_by = tuple(name.strip() for name in params.get("group_by", "").split(",") if name.strip())
    for name in group_by:
        if name not in BREAKDOWN:
            raise QueryError(f"group_by: {name!r} is not one of {', '.join(BREAKDOWN)}")
    if len(set(group_by)) != len(group_by):
        raise QueryError("group_by names a breakdown twice")
    bucket_text = params.get("bucket", "").strip()
    if bucket_text not in ("", "hour", "day"):
        raise QueryError(f"bucket must be hour or day, not {bucket_text[:20]!r}")
    bucket: Bucket | None = "hour" if bucket_text == "hour" else "day" if bucket_text else None
    if bucket == "hour" and to_us - from_us > 31 * DAY_US:
        raise QueryError("bucket=hour covers at most 31 days; use bucket=day")
    filters = []
    for name in BREAKDOWN:
        if name in params:
            values = tuple(value.strip() for value in params[name].split(","))
            if len(values) > MAX_FILTER_VALUES:
                raise QueryError(f"{name}: at most {MAX_FILTER_VALUES} values")
            filters.append((name, values))
    return DeliveryQuery(from_us, to_us, group_by, bucket, tuple(filters))


def previous_period(query: DeliveryQuery) -> DeliveryQuery:
    """The same query over the range just before (same length): "compare with previous"."""
    start = query.from_us // HOUR_US * HOUR_US
    length = -(-query.to_us // HOUR_US) * HOUR_US - start
    return DeliveryQuery(start - length, start, query.group_by, query.bucket, query.filters)
