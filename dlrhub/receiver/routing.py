"""One route per path: routes that share a path become one that dispatches by method.

Starlette tries routes in order and answers a method no route takes with a 405
whose `Allow` names the first matching route's methods only; `GET /v1/messages`
(search) and `POST /v1/messages` (send) come from different parts, so merged here
the 405 lists both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Endpoint = Callable[[Request], Awaitable[Response]]


def one_route_per_path(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    merged: list[BaseRoute] = []
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        if isinstance(route, Route) and route.methods:
            if route.path not in by_path:
                by_path[route.path] = []
                merged.append(route)  # its place, replaced below when shared
            by_path[route.path].append(route)
        else:
            merged.append(route)
    for path, same in by_path.items():
        if len(same) > 1:
            index = merged.index(same[0])
            merged[index] = _dispatching(path, same)
    return merged


def _dispatching(path: str, routes: list[Route]) -> Route:
    endpoints: dict[str, Endpoint] = {}
    for route in routes:
        for method in route.methods or ():
            endpoints.setdefault(method, route.endpoint)

    async def dispatch(request: Request) -> Response:
        endpoint: Any = endpoints[request.method]
        response: Response = await endpoint(request)
        return response

    return Route(path, dispatch, methods=sorted(endpoints))
