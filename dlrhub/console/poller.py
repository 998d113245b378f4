"""The Poller pages: each pollable account's state, and its tracked messages.

`/console/poller` shows the accounts (rate, concurrency, tracked, due, in flight,
an auth pause with its Resume button, the last unreadable answer) and the counts
by state and stop reason; each count links to `/console/poller/tracking`, the
rows themselves, paged. Both read `PollerView` (dlrhub/receiver/tracking_api.py),
as `GET /v1/poller/accounts` and `GET /v1/tracking` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import render
from dlrhub.event import Status
from dlrhub.receiver.auth import Principal
from dlrhub.receiver.query_api import BadQuery
from dlrhub.receiver.tracking_api import PollerView, tracking_filter
from dlrhub.store.tracking import STOP_REASONS, TrackedMessage, TrackingFilter

PAGE_SIZE = 50


class PollerPages:
    def __init__(self, site: ConsoleSite, view: PollerView) -> None:
        self.site = site
        self.view = view

    def routes(self) -> list[Route]:
        return [
            Route("/console/poller", self.site.page(self.accounts), methods=["GET"]),
            Route("/console/poller/tracking", self.site.page(self.tracking), methods=["GET"]),
        ]

    async def accounts(self, request: Request, principal: Principal) -> Response:
        states = await self.view.accounts()
        context = {"accounts": states, "reasons": STOP_REASONS}
        return render(request, "poller.html", context, principal, section="poller")

    async def tracking(self, request: Request, principal: Principal) -> Response:
        params = dict(request.query_params)
        params.setdefault("limit", str(PAGE_SIZE))
        try:
            query = tracking_filter(params)
        except BadQuery as error:
            return self._tracking_page(request, principal, TrackingFilter(), [], None, str(error))
        page = await self.view.tracked(query)
        more = None
        if len(page.messages) == query.limit:
            shown = {key: value for key, value in params.items() if value and key != "after_id"}
            more = urlencode({**shown, "after_id": page.next_after_id})
        return self._tracking_page(request, principal, query, page.messages, more, None)

    def _tracking_page(
        self,
        request: Request,
        principal: Principal,
        query: TrackingFilter,
        messages: Sequence[TrackedMessage],
        more: str | None,
        error: str | None,
    ) -> Response:
        context = {
            "query": query,
            "messages": messages,
            "next_query": more,
            "error": error,
            "accounts": [account.name for account in self.view.pollable],
            "reasons": STOP_REASONS,
            "statuses": [status.value for status in Status],
        }
        status = 400 if error else 200
        return render(
            request,
            "poller_tracking.html",
            context,
            principal,
            section="poller",
            status_code=status,
        )
