"""A fake Conectaline API (`/v1/login`, `/v1/push/simple`, `/v1/push/multiple`).

Speaks the wire format of providers/conectaline-api.txt: success answers carry
`data`, failures `error {message}`. Pushes take the fixed `api_token` form field
or a temporary `Authorization: Bearer` token from `/v1/login`, valid for
`token_lifetime` seconds; an expired or revoked token answers 401. The fault
`expire_token` revokes every token issued so far.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of

MAX_MULTIPLE = 1000


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


@dataclass
class FakeConectaline(FakeProvider):
    base_path: ClassVar[str] = "/v1"
    email: str = "api@example.com"
    password: str = "conectaline-pass-0123"  # noqa: S105 (the fake's demo credential)
    api_token: str = "conectaline-token-0123456789"  # noqa: S105
    configuration_name: str = "dlrhub"
    token_lifetime: float = 3600.0
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    logins: int = 0
    pushes: list[dict[str, object]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def account_settings(self) -> dict[str, str]:
        return {
            "email": self.email,
            "password": self.password,
            "configuration_name": self.configuration_name,
        }

    def error_body(self, status: int) -> bytes:
        return b'{"error": {"message": "Internal server error"}}'

    def on_expire_token(self) -> None:
        self.tokens.clear()

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/login", self.wrap(self.login), methods=["POST"]),
                Route("/v1/push/simple", self.wrap(self.push_simple), methods=["POST"]),
                Route("/v1/push/multiple", self.wrap(self.push_multiple), methods=["POST"]),
            ]
        )

    async def login(self, request: Request) -> Response:
        form = await form_of(request)
        if form.get("email") != self.email or form.get("password") != self.password:
            return error("Invalid credentials", 401)
        self.logins += 1
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        expires_at = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        return JSONResponse(
            {
                "data": {
                    "token": token,
                    "expires_in": int(self.token_lifetime),
                    "expires_at": expires_at.strftime("%Y-%m-%d %H:%M:%S"),
                }
            }
        )

    def _refused(self, request: Request, form: dict[str, str]) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            expiry = self.tokens.get(token.strip())
            if expiry is None or expiry < time.monotonic():
                return error("Token expired or invalid", 401)
        elif form.get("api_token") != self.api_token:
            return error("Invalid api_token", 401)
        if form.get("configuration_name") != self.configuration_name:
            return error("Configuration not found", 422)
        return None

    async def _form(self, request: Request) -> dict[str, str]:
        form = await form_of(request)
        return {key: value for key, value in form.items() if isinstance(value, str)}

    async def push_simple(self, request: Request) -> Response:
        form = await self._form(request)
        refused = self._refused(request, form)
        if refused is not None:
            return refused
        numbers = [number for number in form.get("numbers", "").split(",") if number]
        if not numbers or not form.get("message"):
            return error("The numbers and message fields are required", 422)
        return self._accepted("simple", numbers)

    async def push_multiple(self, request: Request) -> Response:
        form = await self._form(request)
        refused = self._refused(request, form)
        if refused is not None:
            return refused
        try:
            messages = orjson.loads(form.get("messages", ""))
        except orjson.JSONDecodeError:
            return error("messages is not valid JSON", 422)
        if not isinstance(messages, list) or not messages:
            return error("messages must be a non-empty list", 422)
        if len(messages) > MAX_MULTIPLE:
            return error(f"At most {MAX_MULTIPLE} messages per request", 422)
        return self._accepted("multiple", [str(item.get("number")) for item in messages])

    def _accepted(self, kind: str, numbers: list[str]) -> Response:
        push_id = next(self._ids)
        self.pushes.append({"id": push_id, "kind": kind, "numbers": numbers})
        return JSONResponse({"data": {"push_id": push_id, "recipients": len(numbers)}})
