"""The overview page: what an operator opens first (filled in by issue 15's parts)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import render
from dlrhub.receiver.auth import Principal


class OverviewPages:
    def __init__(self, site: ConsoleSite) -> None:
        self.site = site

    def routes(self) -> list[Route]:
        return [Route("/console", self.site.page(self.overview), methods=["GET"])]

    async def overview(self, request: Request, principal: Principal) -> Response:
        return render(request, "overview.html", {}, principal, section="overview")
