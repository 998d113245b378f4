"""Console sessions: a signed cookie every receiver process can check.

The cookie holds the role, a fingerprint of the token signed in with
(`auth.token_id`: rotating the token ends its sessions) and the session's CSRF
token, signed and timed with `itsdangerous` under a key every receiver shares:
`server.session_key` when configured, else one kept in the store
(`Store.shared_secret`), so a session made by one receiver is good at the others.

Flags: HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it), Path=/, Max-Age `server.session_max_age`, and Secure when the console is
reached over https (`server.public_url` is https, or the request came through a
trusted proxy that says https: `server.forwarded_allow_ips`).

Signing out deletes the cookie in that browser; a copied cookie stays good until it
expires or its token is rotated (sessions are not kept server-side).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from dlrhub.receiver.auth import Principal, Role, Tokens, token_id

COOKIE = "dlrhub_session"
SALT = "dlrhub-console-session"
MAX_COOKIE_CHARS = 4096

KeySource = Callable[[], Awaitable[str]]


class Sessions:
    """Issues and reads session cookies."""

    def __init__(
        self,
        tokens: Tokens,
        key_source: KeySource,
        *,
        max_age: float,
        public_url: str | None = None,
    ) -> None:
        self.tokens = tokens
        self.key_source = key_source
        self.max_age = max_age
        self.always_secure = bool(public_url and public_url.startswith("https:"))
        self._serializer: URLSafeTimedSerializer | None = None
        self._lock = asyncio.Lock()

    async def _signer(self) -> URLSafeTimedSerializer:
        if self._serializer is None:
            async with self._lock:
                if self._serializer is None:
                    self._serializer = URLSafeTimedSerializer(await self.key_source(), salt=SALT)
        return self._serializer

    async def read(self, request: Request) -> Principal | None:
        """The principal of the request's session cookie, if it is good and current."""
        value = request.cookies.get(COOKIE)
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        signer = await self._signer()
        try:
            data: Any = signer.loads(value, max_age=int(self.max_age))
        except BadSignature:  # also an expired one (SignatureExpired is a BadSignature)
            return None
        if not isinstance(data, dict):
            return None
        role, fingerprint, csrf = data.get("r"), data.get("t"), data.get("c")
        if role not in (Role.ADMIN.value, Role.VIEWER.value) or not isinstance(csrf, str):
            return None
        if not isinstance(fingerprint, str) or not self.tokens.current(Role(role), fingerprint):
            return None
        return Principal(Role(role), "session", csrf)

    async def sign_in(self, response: Response, request: Request, role: Role, token: str) -> None:
        """Set a new session cookie (with a new CSRF token) on `response`."""
        signer = await self._signer()
        data = {"r": role.value, "t": token_id(token), "c": secrets.token_urlsafe(24)}
        response.set_cookie(
            COOKIE,
            signer.dumps(data),
            max_age=int(self.max_age),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
        )

    def sign_out(self, response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="strict", secure=self.secure(request)
        )

    def secure(self, request: Request) -> bool:
        return self.always_secure or request.url.scheme == "https"
