"""`GET /v1/analytics/delivery`: delivery figures per group, from the rollups (docs/analytics.md).

The parameters are read by `dlrhub.analytics.params.read_delivery_query`, the one
parser the console and the CLI share; `format` (`json`, `csv`) and `compare`
(`previous`) are read here. The answer covers the whole UTC hours the range
touches (the rollups' grain), and says which in `from` and `to`.

`delivery_report` builds the answer and `csv_text` its CSV form, so `dlrhub
analytics` prints exactly what the API answers. A breakdown value the data does not
give (a number that does not parse has no country) is "" in both: "unknown".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.analytics.facts import DAY_US, HOUR_US, WITHIN_SECONDS
from dlrhub.analytics.figures import DeliveryQuery, Sums, figures
from dlrhub.analytics.params import QueryError, previous_period, read_delivery_query
from dlrhub.receiver.auth import Access
from dlrhub.receiver.errors import answering
from dlrhub.store import Store

FORMATS = ("json", "csv")
COMPARES = ("previous",)
COUNTS = ("messages", "delivered", "undelivered", "failed", "rejected", "expired", "pending")
RATES = ("delivery_rate", "delivery_rate_of_submitted")
TIMES = ("p50", "p90", "p99", "mean")
SHARES = tuple(f"within_{seconds}s" for seconds in WITHIN_SECONDS)
# The figures of a group as flat columns (CSV, the CLI's table), in this order.
FIGURE_COLUMNS = (*COUNTS, *RATES, *(f"{name}_s" for name in TIMES), *SHARES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(micros: int) -> str:
    """A period's start as `2026-11-20T10:00:00Z` (periods are whole hours)."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_options(params: Mapping[str, str]) -> tuple[str, bool]:
    """(format, compare with the previous period) from the parameters; `QueryError` if wrong."""
    answer_format = params.get("format", "").strip() or "json"
    if answer_format not in FORMATS:
        raise QueryError(f"format must be json or csv, not {answer_format[:20]!r}")
    compare = params.get("compare", "").strip()
    if compare and compare not in COMPARES:
        raise QueryError(f"compare must be previous, not {compare[:20]!r}")
    return answer_format, bool(compare)


def _whole_hours(query: DeliveryQuery) -> tuple[int, int]:
    """The range the rollups count: from the hour holding `from` to the one after `to`'s."""
    return query.from_us // HOUR_US * HOUR_US, -(-query.to_us // HOUR_US) * HOUR_US


def _group(query: DeliveryQuery, key: tuple[Any, ...], sums: Sums) -> dict[str, Any]:
    period = key[0]
    values = dict(zip(query.group_by, key[1:], strict=True))
    return {"period": None if period is None else rfc3339(period), **values, **figures(sums)}


def _delta(now: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, float | None]:
    """How the delivery rate moved, in percentage points (null if either is unknown)."""
    rate, previous = now["delivery_rate"], before["delivery_rate"]
    points = None if rate is None or previous is None else round((rate - previous) * 100, 4)
    return {"delivery_rate": points}


def previous_key(query: DeliveryQuery, key: tuple[Any, ...], shift: int) -> tuple[Any, ...]:
    """The key a group had in the previous period: its period moved back by the range
    (`shift`), in whole days for days (-7d is 7 days and an hour of whole hours)."""
    period = key[0]
    if period is None:
        return key
    if query.bucket == "day":
        shift = round(shift / DAY_US) * DAY_US
    return (period - shift, *key[1:])


async def delivery_report(store: Store, query: DeliveryQuery, compare: bool) -> dict[str, Any]:
    """The answer of `GET /v1/analytics/delivery` (docs/analytics.md shows one)."""
    start, end = _whole_hours(query)
    sums = await store.delivery_sums(query)
    whole = DeliveryQuery(query.from_us, query.to_us, filters=query.filters)
    total = figures((await store.delivery_sums(whole)).get((None,), Sums()))
    keys = sorted(sums, key=_sort_key)
    groups = [_group(query, key, sums[key]) for key in keys]
    report: dict[str, Any] = {
        "from": rfc3339(start),
        "to": rfc3339(end),
        "group_by": list(query.group_by),
        "bucket": query.bucket,
        "filters": {name: list(values) for name, values in query.filters},
        "groups": groups,
        "total": total,
    }
    if compare:
        before = previous_period(query)
        previous_sums = await store.delivery_sums(before)
        earlier = DeliveryQuery(before.from_us, before.to_us, filters=before.filters)
        previous_total = figures((await store.delivery_sums(earlier)).get((None,), Sums()))
        shift = start - before.from_us
        for key, group in zip(keys, groups, strict=True):
            found = previous_sums.get(previous_key(query, key, shift), Sums())
            group["previous"] = figures(found)
            group["delta"] = _delta(group, group["previous"])
        report["previous"] = {"from": rfc3339(before.from_us), "to": rfc3339(before.to_us)}
        total["previous"] = previous_total
        total["delta"] = _delta(total, previous_total)
    return report


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """By period, then by breakdown values ("" first); without a bucket every period is None."""
    return (key[0] or 0, *key[1:])


def flat_row(group: Mapping[str, Any]) -> dict[str, Any]:
    """A group's figures as `FIGURE_COLUMNS` (times in seconds, rates as fractions)."""
    times = group["time_to_receipt"]
    row = {name: group[name] for name in (*COUNTS, *RATES)}
    row.update({f"{name}_s": times[name] for name in TIMES})
    row.update({name: times[name] for name in SHARES})
    return row


def report_columns(report: Mapping[str, Any]) -> list[str]:
    columns = ["period", *report["group_by"], *FIGURE_COLUMNS]
    if "previous" in report:
        columns += [f"previous_{name}" for name in FIGURE_COLUMNS]
        columns.append("delta_delivery_rate")
    return columns


def report_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per group: what the CSV and the CLI's table show."""
    rows = []
    for group in report["groups"]:
        row = {"period": group["period"], **{name: group[name] for name in report["group_by"]}}
        row.update(flat_row(group))
        if "previous" in group:
            row.update({f"previous_{k}": v for k, v in flat_row(group["previous"]).items()})
            row["delta_delivery_rate"] = group["delta"]["delivery_rate"]
        rows.append(row)
    return rows


def csv_text(report: Mapping[str, Any]) -> str:
    """The report as CSV: a header, then `report_rows` (null is an empty cell)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, report_columns(report), lineterminator="\r\n")
    writer.writeheader()
    for row in report_rows(report):
        writer.writerow({name: "" if value is None else value for name, value in row.items()})
    return out.getvalue()


def csv_filename(report: Mapping[str, Any]) -> str:
    compact = [report[end].replace("-", "").replace(":", "")[:13] for end in ("from", "to")]
    return f"delivery-{compact[0]}Z-{compact[1]}Z.csv"


class AnalyticsApi:
    def __init__(self, store: Store, access: Access) -> None:
        self.store = store
        self.access = access

    def routes(self) -> list[Route]:
        endpoint = self.access.guard(answering(self.delivery, bad=(QueryError,)))
        return [Route("/v1/analytics/delivery", endpoint, methods=["GET"])]

    async def delivery(self, request: Request) -> Response:
        params = request.query_params
        query = read_delivery_query(params, datetime.now(UTC))
        answer_format, compare = read_options(params)
        report = await delivery_report(self.store, query, compare)
        if answer_format == "json":
            return JSONResponse(report)
        return Response(
            csv_text(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{csv_filename(report)}"'},
        )
