"""The overview: what an operator opens first. `GET /v1/overview` and `/console`.

Callbacks per minute by source and outcome come from the store's per-minute counts
(`callback_counts`, written in the commit that stores the callbacks), so they are
right across several receivers; then quarantine pending, each sink's state, lag and
oldest undelivered event, each poller account's state, and whether the store
answers, and how many alerts are open (docs/alerts.md). The page reloads itself
every `REFRESH_SECONDS`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.console.charts import stacked_bars
from dlrhub.console.sinks import SinksApi
from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import render
from dlrhub.event import format_time
from dlrhub.receiver.auth import Access, Principal
from dlrhub.receiver.errors import store_unavailable
from dlrhub.receiver.tracking_api import PollerView
from dlrhub.store import Store, StoreUnavailable
from dlrhub.store.alerts_sql import SQLAlerts

WINDOW_MINUTES = 60
REFRESH_SECONDS = 15
OUTCOMES = ("stored", "duplicate", "quarantined")


class Overview:
    """The overview's figures, for the API and the page alike."""

    def __init__(
        self, store: Store, backend: str, sinks: SinksApi, poller: PollerView, alerts: SQLAlerts
    ) -> None:
        self.store = store
        self.backend = backend
        self.sinks = sinks
        self.poller = poller
        self.alerts = alerts  # opened by the alerts API's service

    async def figures(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        first = now.replace(second=0, microsecond=0) - timedelta(minutes=WINDOW_MINUTES - 1)
        started = time.perf_counter()
        counts = await self.store.callback_counts(first)
        read_ms = (time.perf_counter() - started) * 1000
        by_source: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
        for count in counts:
            by_source[count.source][count.outcome] = (
                by_source[count.source].get(count.outcome, 0) + count.count
            )
        return {
            "generated_at": format_time(now),
            "callbacks": {
                "since": format_time(first),
                "per_minute": [count.to_dict() for count in counts],
                "by_source": [
                    {"source": source, **outcomes} for source, outcomes in sorted(by_source.items())
                ],
            },
            "quarantine_pending": await self.store.quarantine_pending_count(),
            "alerts_open": len(await self.alerts.open_alerts()),  # one per rule and group at most
            "sinks": await self.sinks.reports(),
            "poller": [account.to_dict() for account in await self.poller.accounts()],
            "store": {"backend": self.backend, "ok": True, "read_ms": round(read_ms, 2)},
        }


def chart(figures: dict[str, Any]) -> tuple[list[datetime], dict[str, list[int]]]:
    """One column per minute of the window, callbacks per outcome over all sources."""
    since = datetime.fromisoformat(figures["callbacks"]["since"].replace("Z", "+00:00"))
    minutes = [since + timedelta(minutes=index) for index in range(WINDOW_MINUTES)]
    series = {outcome: [0] * WINDOW_MINUTES for outcome in OUTCOMES}
    for count in figures["callbacks"]["per_minute"]:
        minute = datetime.fromisoformat(count["minute"].replace("Z", "+00:00"))
        index = int((minute - since).total_seconds() // 60)
        if 0 <= index < WINDOW_MINUTES and count["outcome"] in series:
            series[count["outcome"]][index] += int(count["count"])
    return minutes, series


class OverviewApi:
    def __init__(self, overview: Overview, access: Access) -> None:
        self.overview = overview
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/v1/overview", self.access.guard(self.get), methods=["GET"])]

    async def get(self, request: Request) -> Response:
        try:
            return JSONResponse(await self.overview.figures())
        except StoreUnavailable as error:
            return store_unavailable(request.method, request.url.path, error)


class OverviewPages:
    def __init__(self, site: ConsoleSite, overview: Overview) -> None:
        self.site = site
        self.overview = overview

    def routes(self) -> list[Route]:
        return [Route("/console", self.site.page(self.page), methods=["GET"])]

    async def page(self, request: Request, principal: Principal) -> Response:
        try:
            figures = await self.overview.figures()
        except StoreUnavailable:
            refused = {
                "title": "The store does not answer",
                "detail": "The store cannot be read right now; this page tries again by itself."
                " /readyz says the same; the cause is in the receiver's log.",
            }
            return render(request, "error.html", refused, principal, status_code=503)
        minutes, series = chart(figures)
        total = sum(sum(values) for values in series.values())
        context: dict[str, Any] = {
            "figures": figures,
            "total": total,
            "totals": {outcome: sum(values) for outcome, values in series.items()},
            "chart": stacked_bars("Callbacks per minute, last hour, by outcome", minutes, series)
            if total
            else None,
            "refresh": REFRESH_SECONDS,
            "failing_sinks": [s for s in figures["sinks"] if s["state"] in ("failing", "disabled")],
            "paused_accounts": [a for a in figures["poller"] if a["paused"]],
        }
        return render(request, "overview.html", context, principal, section="overview")
