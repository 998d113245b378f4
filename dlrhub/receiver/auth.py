"""Who may call: source tokens for providers, the admin bearer token for the API.

360NRS cannot send headers, so a source token travels as `?token=` in the URL;
HTTP Basic (any user name, the token as password) is accepted too. Tokens are
compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def basic_password(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, separator, password = decoded.partition(":")
    return password if separator else None


def verify_source_token(request: Request, expected: str) -> bool:
    given = request.query_params.get("token")
    if given is None:
        given = basic_password(request)
    return given is not None and _equal(given, expected)


def verify_admin_token(request: Request, expected: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _equal(value.strip(), expected)
