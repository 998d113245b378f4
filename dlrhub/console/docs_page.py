"""`/docs`: the API reference, Swagger UI rendering this server's own `/openapi.json`.

A static page: the UI is started by static/docs.js, not an inline script, so the
page runs under the console's Content-Security-Policy (headers.py). The document
it renders is public already, so the page needs no token; calls made with
"Try it out" go to this origin only (the policy's `default-src 'self'`) and need
the admin token like any other call.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from dlrhub.console.headers import security_headers

PATH = "/docs"


def docs_routes() -> list[BaseRoute]:
    """The `/docs` route; the assets it loads are served by assets.static_route()."""
    page = files("dlrhub.console").joinpath("templates/docs.html").read_bytes()
    headers = security_headers(cache_control="no-cache")

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=headers)

    return [Route(PATH, docs, methods=["GET"])]
