"""Remove secrets from query strings, form bodies, log lines and messages.

Provider keys, source tokens and passwords travel in query strings and forms
(360NRS cannot send headers; Onurix and UVox take keys as parameters). They
must never reach logs, stored raw payloads or error messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from dlrhub.name_cache import cached_for_short_names

REDACTED = "[REDACTED]"

SECRET_PARAMETERS = frozenset(
    {
        "token",
        "access_token",
        "api_token",
        "apikey",
        "api_key",
        "key",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "auth",
        "authorization",
    }
)


def is_secret_parameter(name: str) -> bool:
    return name.strip().lower().replace("-", "_") in SECRET_PARAMETERS


@cached_for_short_names
def _is_secret_encoded_name(name: str) -> bool:
    """`is_secret_parameter` of a still-encoded name."""
    return is_secret_parameter(unquote_plus(name))


def redact_query(query: str) -> str:
    """Replace the value of every secret parameter; leave the rest byte for byte."""
    if not query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, separator, _ = part.partition("=")
        if separator and _is_secret_encoded_name(name):
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def redact_form(body: bytes) -> bytes:
    """`redact_query` for an `application/x-www-form-urlencoded` body."""
    if b"=" not in body:
        return body
    text = body.decode("latin-1")
    redacted = redact_query(text)
    return body if redacted == text else redacted.encode("latin-1")


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of the given secret values in free text."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_dsn(dsn: str) -> str:
    """A database URL without its password: `postgresql://user:[REDACTED]@host/db`."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return redact_query_in_url(dsn)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return redact_query_in_url(urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}")))


def redact_query_in_url(url: str) -> str:
    base, separator, query = url.partition("?")
    return f"{base}?{redact_query(query)}" if separator else url


class AccessLogRedactor(logging.Filter):
    """Redacts the query of the request path in Uvicorn's access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, separator, query = args[2].partition("?")
            if separator:
                record.args = (*args[:2], f"{path}?{redact_query(query)}", *args[3:])
        return True
