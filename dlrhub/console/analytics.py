"""The Analytics page, `/console/analytics`: delivery figures from the store's rollups.

The form is a GET, so a URL is a shareable view. Its fields are the parameters of
`dlrhub.analytics.params.read_delivery_query`, the one parser the API and the CLI
use too (`from`, `to`, `group_by`, `bucket`, a breakdown name as a filter); the
page only reads a repeated field (its two group-by selects) as a comma list and
an empty field as no field. The page shows, for messages submitted in the range
(whole UTC hours, as the rollups keep them):

- the headline figures beside the previous period's (`previous_period`);
- delivery rate and time to receipt p90 per hour (ranges up to two days) or per
  day, as SVG lines with the same figures in a table;
- the failure reasons, and a table per chosen breakdown.

Rows link to the Messages search with what it can filter on (`CARRIED`: provider,
source, status, and `since` = the range's start); sender, channel, country and
operator it cannot, and the page says so under each table.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.analytics.facts import BREAKDOWN, DAY_US, HOUR_US, SETTLED, WITHIN_SECONDS
from dlrhub.analytics.figures import Bucket, DeliveryQuery, Sums, figures
from dlrhub.analytics.params import QueryError, previous_period, read_delivery_query
from dlrhub.console.charts import line_chart
from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import STORE_UNREADABLE, render
from dlrhub.receiver.auth import Principal
from dlrhub.store import Store, StoreUnavailable

PRESETS = (("Last 24 h", "-24h"), ("7 days", "-7d"), ("30 days", "-30d"))
HOURLY_UP_TO_US = 2 * DAY_US  # the charts' bucket when the form asks none: hour up to 2 days
CARRIED = ("provider", "source")  # breakdowns the Messages search filters on, same name
FAILED = tuple(status for status in SETTLED if status != "delivered")
UNKNOWN = "unknown"  # how a breakdown value the store could not tell ("") is shown


def form_params(query: QueryParams) -> dict[str, str]:
    """The form's fields as `read_delivery_query` takes them: a repeated field is a comma
    list (the two group-by selects), an empty one is not sent (a blank filter box)."""
    params: dict[str, str] = {}
    for name in dict.fromkeys(query.keys()):
        values = [value.strip() for value in query.getlist(name) if value.strip()]
        if values:
            params[name] = ",".join(values)
    return params


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f} %"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def bound_text(seconds: int) -> str:
    """5 s, 60 s, 10 min: the bounds of WITHIN_SECONDS."""
    return f"{seconds} s" if seconds <= 60 else f"{seconds // 60} min"


def shown(value: str) -> str:
    return value or UNKNOWN


def measures(measured: dict[str, Any]) -> list[tuple[str, str]]:
    """(measure, value) of a range's `figures`, as the page prints them."""
    times = measured["time_to_receipt"]
    return [
        ("Messages", str(measured["messages"])),
        ("Delivery rate (delivered / settled)", percent(measured["delivery_rate"])),
        ("Delivery rate of submitted", percent(measured["delivery_rate_of_submitted"])),
        ("Pending", str(measured["pending"])),
        *((f"Time to receipt {name}", duration(times[name])) for name in ("p50", "p90", "p99")),
        *(
            (f"Receipt within {bound_text(seconds)}", percent(times[f"within_{seconds}s"]))
            for seconds in WITHIN_SECONDS
        ),
    ]


def headline(now: dict[str, Any], before: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, this range, the previous period)."""
    return [
        (name, value, previous)
        for (name, value), (_, previous) in zip(measures(now), measures(before), strict=True)
    ]


def drill_down(
    query: DeliveryQuery, values: dict[str, str], status: str | None = None
) -> tuple[str, list[str]]:
    """The Messages search for a group (`values`: breakdown -> value) within the query's
    filters, and the breakdowns it had to leave out (the search has no such filter)."""
    since = datetime.fromtimestamp(query.from_us // HOUR_US * HOUR_US / 1e6, UTC)
    params = {"since": since.strftime("%Y-%m-%dT%H:%M:%S")}
    dropped: list[str] = []
    for name, allowed in query.filters:
        if name not in values:
            if name in CARRIED and len(allowed) == 1 and allowed[0]:
                params[name] = allowed[0]
            else:
                dropped.append(name)
    for name, value in values.items():
        if name in CARRIED:
            params[name] = value
        else:
            dropped.append(name)
    if status:
        params["status"] = status
    return "/console/messages?" + urlencode(params), dropped


def group_row(
    query: DeliveryQuery, names: tuple[str, ...], key: tuple[Any, ...], sums: Sums
) -> dict[str, Any]:
    measured = figures(sums)
    values = dict(zip(names, (str(value) for value in key[1:]), strict=True))
    link, dropped = drill_down(query, values)
    return {
        "values": [shown(value) for value in values.values()],
        "messages": measured["messages"],
        "delivery_rate": percent(measured["delivery_rate"]),
        "delivery_rate_of_submitted": percent(measured["delivery_rate_of_submitted"]),
        "p50": duration(measured["time_to_receipt"]["p50"]),
        "p90": duration(measured["time_to_receipt"]["p90"]),
        "failures": sum(measured[status] for status in FAILED),
        "pending": measured["pending"],
        "link": link,
        "dropped": dropped,
    }


def chart_bucket(query: DeliveryQuery) -> Bucket:
    if query.bucket is not None:
        return query.bucket
    return "hour" if query.to_us - query.from_us <= HOURLY_UP_TO_US else "day"


def periods(query: DeliveryQuery, bucket: Bucket) -> list[int]:
    """Every period of the range, so an hour without messages is a gap, not skipped."""
    step = HOUR_US if bucket == "hour" else DAY_US
    start = query.from_us // step * step
    return list(range(start, query.to_us, step))


def as_time(period_us: int) -> datetime:
    return datetime.fromtimestamp(period_us / 1e6, UTC)


class AnalyticsPages:
    def __init__(self, site: ConsoleSite, store: Store) -> None:
        self.site = site
        self.store = store

    def routes(self) -> list[Route]:
        return [Route("/console/analytics", self.site.page(self.page), methods=["GET"])]

    async def page(self, request: Request, principal: Principal) -> Response:
        params = form_params(request.query_params)
        group_by = params.get("group_by", "").split(",")
        chosen_from = params.get("from", "" if "to" in params else "-24h")
        kept = {name: value for name, value in params.items() if name not in ("from", "to")}
        context: dict[str, Any] = {
            "params": params,
            "breakdown": BREAKDOWN,
            "chosen": [*group_by, "", ""][:2],
            "filtered": [f"{name} = {params[name]}" for name in BREAKDOWN if name in params],
            "presets": [
                (label, "?" + urlencode({**kept, "from": offset}), chosen_from == offset)
                for label, offset in PRESETS
            ],
            "error": None,
            "result": None,
        }
        try:
            query = read_delivery_query(params, datetime.now(UTC))
        except QueryError as error:
            context["error"] = str(error)
            return self._render(request, context, principal, 400)
        try:
            context["result"] = await self._result(query)
        except StoreUnavailable:
            context["error"] = STORE_UNREADABLE
            return self._render(request, context, principal, 503)
        return self._render(request, context, principal, 200)

    def _render(
        self, request: Request, context: dict[str, Any], principal: Principal, status: int
    ) -> Response:
        return render(
            request, "analytics.html", context, principal, section="analytics", status_code=status
        )

    async def _result(self, query: DeliveryQuery) -> dict[str, Any]:
        whole = replace(query, group_by=(), bucket=None)
        total = figures((await self.store.delivery_sums(whole)).get((None,), Sums()))
        before = replace(previous_period(query), group_by=(), bucket=None)
        earlier = figures((await self.store.delivery_sums(before)).get((None,), Sums()))
        result: dict[str, Any] = {
            "from": as_time(query.from_us // HOUR_US * HOUR_US),
            "to": as_time(-(-query.to_us // HOUR_US) * HOUR_US),
            "previous_from": as_time(before.from_us),
            "messages": total["messages"],
            "headline": headline(total, earlier),
        }
        if not total["messages"]:
            return result
        result["reasons"] = [
            {**reason, "link": drill_down(query, {}, reason["status"])[0]}
            for reason in total["failure_reasons"]
        ]
        result["reasons_dropped"] = drill_down(query, {})[1]
        result["charts"] = await self._charts(query)
        result["tables"] = []
        groupings: list[tuple[str, ...]] = [(name,) for name in query.group_by]
        if len(query.group_by) > 1:
            groupings.append(query.group_by)
        for names in groupings:
            sums = await self.store.delivery_sums(replace(query, group_by=names, bucket=None))
            rows = [
                group_row(query, names, key, group)
                for key, group in sorted(
                    sums.items(),
                    key=lambda item: (-item[1].counters.get("messages", 0), item[0][1:]),
                )
            ]
            dropped = sorted({name for row in rows for name in row["dropped"]})
            result["tables"].append({"names": names, "rows": rows, "dropped": dropped})
        return result

    async def _charts(self, query: DeliveryQuery) -> dict[str, Any]:
        bucket = chart_bucket(query)
        sums = await self.store.delivery_sums(replace(query, group_by=(), bucket=bucket))
        points = periods(query, bucket)
        measured = [figures(sums[(period,)]) if (period,) in sums else None for period in points]
        rates = [None if f is None else f["delivery_rate"] for f in measured]
        p90s = [None if f is None else f["time_to_receipt"]["p90"] for f in measured]
        moments = [as_time(period) for period in points]
        each = "hour" if bucket == "hour" else "day"
        shape = "%m-%d %H:%M" if bucket == "hour" else "%Y-%m-%d"
        return {
            "bucket": each,
            "rate": line_chart(
                f"Delivery rate per {each}",
                f"Delivered of settled messages, by the {each} they were submitted;"
                " the table below gives every figure.",
                moments,
                rates,
                top=1.0,
                label=lambda share: f"{share * 100:.0f} %",
                period_format=shape,
            ),
            "p90": line_chart(
                f"Time to receipt p90 per {each}",
                f"90th percentile of the time from submission to the final receipt, by the {each}"
                " the messages were submitted; the table below gives every figure.",
                moments,
                p90s,
                label=duration,
                period_format=shape,
            ),
            "rows": [
                (moment.strftime(shape), percent(rate), duration(p90))
                for moment, rate, p90, f in zip(moments, rates, p90s, measured, strict=True)
                if f is not None
            ],
        }
