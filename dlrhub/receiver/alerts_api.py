"""`GET /v1/alerts`: the alerts, open ones first, then the resolved ones (docs/alerts.md).

Each entry is one episode of a rule's group, opened when its condition held and
resolved when it no longer did; a group that alerts again has a new episode, so the
list is the history. `?state=open|resolved` keeps one state, `?limit=` (1-1000,
default 100) the first so many. Viewer and admin tokens read it. A `Service`: it
opens its connection to the alerts' tables when the app starts.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.receiver.auth import Access
from dlrhub.receiver.errors import answering
from dlrhub.receiver.query_api import MAX_LIMIT, BadQuery, whole_number
from dlrhub.store.alerts_sql import AlertState, SQLAlerts
from dlrhub.store.database import open_database
from dlrhub.store.settings import StoreConfig

PARAMS = ("state", "limit")
STATES: tuple[AlertState, ...] = ("open", "resolved")


class AlertsApi:
    def __init__(self, store: StoreConfig, data_dir: Path, access: Access) -> None:
        self.alerts = SQLAlerts(open_database(store, data_dir, synchronous="NORMAL"))
        self.access = access

    async def start(self) -> None:
        await self.alerts.open()

    async def stop(self) -> None:
        await self.alerts.close()

    def routes(self) -> list[Route]:
        endpoint = self.access.guard(answering(self.list_alerts, bad=(BadQuery,)))
        return [Route("/v1/alerts", endpoint, methods=["GET"])]

    async def list_alerts(self, request: Request) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
        state = params.get("state") or None
        if state is not None and state not in STATES:
            raise BadQuery("state must be 'open' or 'resolved'")
        limit = whole_number("limit", params.get("limit"), 100, 1, MAX_LIMIT)
        found = await self.alerts.alerts(state, limit)
        return JSONResponse({"alerts": [alert.to_dict() for alert in found]})
