"""Who may call: source tokens for providers, the admin bearer token for the API.

360NRS cannot send headers, so a source token travels as `?token=` in the URL;
HTTP Basic (any user name, the token as password) is accepted too. Tokens are
compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from dlrhub.receiver.errors import error_response


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def basic_password(authorization: str) -> str | None:
    """The password of an HTTP Basic `Authorization` header value (any user name)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, separator, password = decoded.partition(":")
    return password if separator else None


def query_token(query_string: bytes) -> str | None:
    """The last `token` parameter of a raw query string, decoded as a form value."""
    if b"token" not in query_string and b"%" not in query_string:
        return None  # the cheap common miss: no parameter can decode to `token`
    found = None
    for part in query_string.decode("latin-1").split("&"):
        name, separator, value = part.partition("=")
        if name == "token" or ("%" in name and unquote_plus(name) == "token"):
            found = unquote_plus(value) if separator else ""
    return found


def verify_source_token(query_string: bytes, authorization: str, expected: str) -> bool:
    """A source token as `?token=` or as the HTTP Basic password, in constant time."""
    given = query_token(query_string)
    if given is None:
        given = basic_password(authorization)
    return given is not None and _equal(given, expected)


def verify_admin_token(request: Request, expected: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _equal(value.strip(), expected)


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
