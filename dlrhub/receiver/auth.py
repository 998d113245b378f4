"""Who may call the API: the admin bearer token, compared in constant time.

Provider callbacks authenticate as their provider declares (`dlrhub.providers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from dlrhub.providers.token import equal_secrets
from dlrhub.receiver.errors import error_response


def verify_admin_token(request: Request, expected: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and equal_secrets(value.strip(), expected)


Endpoint = Callable[[Request], Awaitable[Response]]


def require_admin(admin_token: str | None, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, answering 401 unless the request carries the admin bearer token."""

    async def guarded(request: Request) -> Response:
        if admin_token is None or not verify_admin_token(request, admin_token):
            return error_response(
                401,
                "unauthorized",
                "this API needs 'Authorization: Bearer <admin token>'",
                {"WWW-Authenticate": "Bearer"},
            )
        return await endpoint(request)

    return guarded
