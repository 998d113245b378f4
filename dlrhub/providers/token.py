"""The source token: how providers that cannot sign their callbacks authenticate.

360NRS cannot send headers, so a source token travels as `?token=` in the URL;
HTTP Basic (any user name, the token as password) is accepted too. Tokens are
compared in constant time. Kannel, Jasmin and 360NRS sources use it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from dlrhub.providers.base import HookRequest


def equal_secrets(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts."""
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
    return given is not None and equal_secrets(given, expected)


@dataclass(frozen=True, slots=True)
class SourceToken:
    """`?token=` or the HTTP Basic password, checked before the body is read."""

    needs_body: bool = False
    headers: tuple[str, ...] = ("authorization",)
    challenge: str | None = 'Basic realm="dlrhub"'
    failure: str = "Missing or wrong source token; nothing stored."

    @property
    def security(self) -> Mapping[str, Mapping[str, str]]:
        return {
            "sourceToken": {"type": "apiKey", "in": "query", "name": "token"},
            "sourceBasic": {"type": "http", "scheme": "basic"},
        }

    def __call__(self, request: HookRequest, secret: str) -> bool:
        return verify_source_token(
            request.query_string, request.headers.get("authorization", ""), secret
        )


SOURCE_TOKEN = SourceToken()
