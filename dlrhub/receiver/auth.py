"""Who may call the API and the console, and what they may change.

Two roles: the admin token (`admin_token`) may do everything; a viewer token
(`viewer_tokens`) may read everything and change nothing. A caller proves its role
with `Authorization: Bearer <token>` or with a console session cookie
(`dlrhub/receiver/sessions.py`). A change (any method but GET/HEAD/OPTIONS) made
with a session must also carry the session's CSRF token in `X-CSRF-Token`: the
cookie alone is sent by the browser on any site's request, the header is not.

Tokens are compared in constant time. Provider callbacks authenticate as their
provider declares (`dlrhub.providers`), not here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from dlrhub.providers.token import equal_secrets
from dlrhub.receiver.errors import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller the API recognised: its role, how it proved it, and (for sessions) its
    CSRF token."""

    role: Role
    via: Literal["token", "session"]
    csrf: str | None = None

    @property
    def may_change(self) -> bool:
        return self.role is Role.ADMIN


def token_id(token: str) -> str:
    """A short fingerprint of a token, kept in a session so that rotating the token ends
    the sessions signed in with it (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


SessionReader = Callable[[Request], Awaitable[Principal | None]]


class Tokens:
    """The configured tokens and the role each gives."""

    def __init__(self, admin_token: str | None, viewer_tokens: Sequence[str] = ()) -> None:
        self.admin_token = admin_token or None
        self.viewer_tokens = tuple(token for token in viewer_tokens if token)

    def role_of(self, given: str) -> Role | None:
        """The role `given` signs in as, or None (every token compared, in constant time)."""
        role: Role | None = None
        if self.admin_token is not None and equal_secrets(given, self.admin_token):
            role = Role.ADMIN
        for token in self.viewer_tokens:
            if equal_secrets(given, token) and role is None:
                role = Role.VIEWER
        return role

    def current(self, role: Role, fingerprint: str) -> bool:
        """Whether a session's token (by its fingerprint) is still configured for `role`."""
        tokens = [self.admin_token] if role is Role.ADMIN else list(self.viewer_tokens)
        return any(token is not None and token_id(token) == fingerprint for token in tokens)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(token for token in (self.admin_token, *self.viewer_tokens) if token)


Endpoint = Callable[[Request], Awaitable[Response]]


class Access:
    """Identifies callers (bearer token, else session) and guards endpoints by role."""

    def __init__(self, tokens: Tokens, sessions: SessionReader | None = None) -> None:
        self.tokens = tokens
        self.sessions = sessions

    async def identify(self, request: Request) -> Principal | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            role = self.tokens.role_of(value.strip())
            return Principal(role, "token") if role is not None else None
        if self.sessions is not None:
            return await self.sessions(request)
        return None

    def guard(self, endpoint: Endpoint) -> Endpoint:
        """`endpoint`, answering 401 to a stranger, 403 to a viewer's change and to a
        session's change without its CSRF token."""

        async def guarded(request: Request) -> Response:
            principal = await self.identify(request)
            if principal is None:
                return error_response(
                    401,
                    "unauthorized",
                    "this API needs 'Authorization: Bearer <token>' (admin or viewer token)",
                    {"WWW-Authenticate": "Bearer"},
                )
            if request.method not in SAFE_METHODS:
                if not principal.may_change:
                    return error_response(
                        403, "forbidden", "a viewer can read everything and change nothing"
                    )
                if principal.via == "session" and not _csrf_matches(request, principal):
                    return error_response(
                        403,
                        "csrf",
                        "a change from the console needs the page's CSRF token in X-CSRF-Token",
                    )
            request.state.principal = principal
            return await endpoint(request)

        return guarded


def _csrf_matches(request: Request, principal: Principal) -> bool:
    given = request.headers.get(CSRF_HEADER, "")
    return bool(given) and principal.csrf is not None and equal_secrets(given, principal.csrf)
