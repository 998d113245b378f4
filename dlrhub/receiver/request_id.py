"""The request id: one per HTTP request, from `X-Request-Id` when it is sane, else made here.

It is echoed in the answer's `X-Request-Id`, written on the access line, and a
callback's events carry it in `extra.request_id` into the store and every sink
delivery (dlrhub/receiver/ingest.py), so that one id finds a callback in the
proxy's log, dlrhub's and a consumer's. It is never part of what identifies a
callback: a provider's retry is a duplicate whatever its request id, and the
stored event keeps the first one's.

A given id is taken only when it is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`
and holds none of the configured secrets (a source token or the admin token
pasted as an id would otherwise reach the logs and the sinks); otherwise a new
one is made: 16 random hex digits.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Iterable

HEADER = b"x-request-id"
SCOPE_KEY = "dlrhub.request_id"  # where the ASGI scope carries it to the routes
MAX_LENGTH = 128
_SANE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")


def new_request_id() -> str:
    return secrets.token_hex(8)


def is_sane(candidate: str, known_secrets: Collection[str] = ()) -> bool:
    """Whether a client's id may be used as it is (the rule is in the module docstring)."""
    if _SANE.fullmatch(candidate) is None:
        return False
    return not any(secret in candidate for secret in known_secrets)


def request_id_of(headers: Iterable[tuple[bytes, bytes]], known_secrets: Collection[str]) -> str:
    """The request's id: its first `X-Request-Id` if sane, else a new one."""
    for name, value in headers:
        if name == HEADER:
            candidate = value.decode("latin-1")
            return candidate if is_sane(candidate, known_secrets) else new_request_id()
    return new_request_id()
