"""Remove secrets from query strings, form bodies, log lines and messages.

Provider keys, source tokens and passwords travel in query strings and forms
(360NRS cannot send headers; Onurix and UVox take keys as parameters). They
must never reach logs, stored raw payloads or error messages.
"""

from __future__ import annotations

import logging
import re
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


def _stems(names: Iterable[str]) -> tuple[str, ...]:
    """The names that contain no other name, so that every name contains one of them."""
    unique = set(names)
    return tuple(sorted(n for n in unique if not any(o != n and o in n for o in unique)))


_RAW_FORMS = {"_": "_-", " ": " +"}  # what `is_secret_parameter` and `unquote_plus` make of them


def _raw_spellings(stem: str) -> list[str]:
    """Every way a raw name can spell `stem` without a `%`, once lowercased."""
    spellings = [""]
    for char in stem:
        spellings = [start + raw for start in spellings for raw in _RAW_FORMS.get(char, char)]
    return spellings


# auth, key, pass, pwd, secret, token: derived, so that a new secret name is never missed.
# `token` first: the source token is in most query strings, so the look ends at once.
SECRET_STEMS = tuple(sorted(_stems(SECRET_PARAMETERS), key=lambda stem: stem != "token"))
_STEM_SPELLINGS = tuple(spelling for stem in SECRET_STEMS for spelling in _raw_spellings(stem))
# A `%` followed by `=` before any `&`: the name it is in may encode anything. The last
# `%` of a name finds its `=` without crossing another `%`, so `[^&=%]` loses no name
# and each try in a value's run of escapes (`%C3%B1`) stops at the next `%`.
_PERCENT_IN_NAME = re.compile(r"%[^&=%]*+=")


def _may_name_a_secret(query: str) -> bool:
    """False only if no parameter name in `query` can be secret: nothing to redact then.

    Decoded, stripped, lowercased and with `-` as `_`, a secret name contains a stem;
    without a `%` (`%74oken`) its raw spelling shows the stem in `query.lower()` too.
    Stems are sought in values as well: substring searches cost far less than a regex
    telling names from values (CPython's `re` tries each position that may start a
    stem), and a stem in a value only sends the query down the exact path.
    """
    lowered = query.lower()
    for spelling in _STEM_SPELLINGS:
        if spelling in lowered:
            return True
    return "%" in query and _PERCENT_IN_NAME.search(query) is not None


def _redact_each_parameter(query: str) -> str:
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, separator, _ = part.partition("=")
        if separator and _is_secret_encoded_name(name):
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def redact_query(query: str) -> str:
    """Replace the value of every secret parameter; leave the rest byte for byte.

    Most callbacks name no secret: a cheap look for one spares them the split.
    """
    if not query or not _may_name_a_secret(query):
        return query
    return _redact_each_parameter(query)


def redact_form(body: bytes) -> bytes:
    """`redact_query` for an `application/x-www-form-urlencoded` body."""
    text = body.decode("latin-1")  # str: `in` on bytes is slower, and the exact path needs it
    if "=" not in text or not _may_name_a_secret(text):
        return body
    redacted = _redact_each_parameter(text)
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
