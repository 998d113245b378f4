"""Conectaline client: `login`, `push/simple`, `push/multiple` (see providers/conectaline-api.txt).

Authentication, as the account chooses:

- `api_token` (fixed): sent as the `api_token` form field of every request;
- `email` + `password`: `POST login` gives a temporary token used as
  `Authorization: Bearer`. The token is cached and renewed `token_renew_margin`
  (default 60 s) before it expires, as the document recommends (~l.144); a 401
  on a push drops it, logs in again and repeats the push once.

The expiry is `expires_in` seconds after the login answer; only when it is
missing, `expires_at` (Unix seconds, or an ISO 8601 / `YYYY-MM-DD HH:MM:SS` time,
read as UTC when it has no offset; the document shows no example).

`push/simple` sends one text to `numbers` (comma separated); `push/multiple`
sends `messages`, a JSON list of `{number, message}`, at most 1000 per request
(~l.573). A send with one text uses simple pushes, with per-recipient texts
multiple pushes; either is split every 1000 recipients. There is no status API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from dlrhub.normalizers.exchange import REFS_PARAM
from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.clients import OutboundMessage
from dlrhub.outbound.errors import (
    NotSupported,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from dlrhub.outbound.transport import Exchange, Transport, encode_request

LOGIN = "login"
PUSH_SIMPLE = "push/simple"
PUSH_MULTIPLE = "push/multiple"
MAX_PER_PUSH = 1000
DEFAULT_RENEW_MARGIN = 60.0


class ConectalineClient:
    def __init__(self, account: AccountConfig, transport: Transport) -> None:
        self.account = account
        self.transport = transport
        self.api_token = account.setting("api_token")
        self.renew_margin = timedelta(
            seconds=float(account.setting("token_renew_margin") or DEFAULT_RENEW_MARGIN)
        )
        self._token: str | None = None
        self._renew_at: datetime | None = None
        self._login_lock = asyncio.Lock()
        self.logins = 0

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        raise self.transport.error(NotSupported, "Conectaline has no status API to poll")

    async def send(self, message: OutboundMessage) -> list[Exchange]:
        exchanges = []
        for start in range(0, len(message.recipients), MAX_PER_PUSH):
            chunk = slice(start, start + MAX_PER_PUSH)
            numbers = message.recipients[chunk]
            refs = message.refs[chunk]
            form: list[tuple[str, str]] = [
                ("configuration_name", self.account.setting("configuration_name") or "")
            ]
            if message.texts is None:
                path = PUSH_SIMPLE
                form += [("message", message.text), ("numbers", ",".join(numbers))]
            else:
                path = PUSH_MULTIPLE
                texts = message.texts[chunk]
                listing = [
                    {"number": number, "message": text}
                    for number, text in zip(numbers, texts, strict=True)
                ]
                form.append(("messages", orjson.dumps(listing).decode()))
            response = await self._push(path, form)
            record = encode_request([*form, (REFS_PARAM, ",".join(refs))])
            exchanges.append(self.transport.exchange(response, record))
        return exchanges

    async def _push(self, path: str, form: list[tuple[str, str]]) -> httpx.Response:
        for attempt in (1, 2):
            fields = list(form)
            headers = {}
            if self.api_token:
                fields.append(("api_token", self.api_token))
            else:
                headers["Authorization"] = f"Bearer {await self.token()}"
            response = await self.transport.request(
                "POST", path, idempotent=False, data=dict(fields), headers=headers
            )
            if response.status_code == 401 and not self.api_token and attempt == 1:
                self._token = None  # expired or revoked early: log in again, once
                continue
            self._raise_for(response)
            return response
        raise AssertionError("unreachable")

    async def token(self) -> str:
        """A valid temporary token: the cached one, or a new login when it is about to expire."""
        async with self._login_lock:
            now = self.transport.now()
            if self._token is None or self._renew_at is None or now >= self._renew_at:
                await self._login(now)
            assert self._token is not None
            return self._token

    async def _login(self, now: datetime) -> None:
        form = {
            "email": self.account.setting("email") or "",
            "password": self.account.setting("password") or "",
        }
        response = await self.transport.request("POST", LOGIN, idempotent=True, data=form)
        self.logins += 1
        answer = _json(response)
        data = answer.get("data") if isinstance(answer, dict) else None
        if response.status_code in (400, 401, 403) or (
            isinstance(answer, dict) and "error" in answer
        ):
            raise self.transport.error(
                ProviderAuthError,
                f"login refused: {_error_message(answer) or f'HTTP {response.status_code}'}",
                http_status=response.status_code,
            )
        if response.status_code >= 500:
            raise self.transport.error(
                ProviderUnavailable, "login failed", http_status=response.status_code
            )
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self.transport.error(
                ProviderAuthError,
                "the login answer has no data.token",
                http_status=response.status_code,
            )
        self.transport.secrets.add(token)
        self._token = token
        assert isinstance(data, dict)
        expires_at = _expiry(data, now)
        # Renew `token_renew_margin` early, or half-way for a token shorter-lived than that.
        self._renew_at = expires_at - min(self.renew_margin, (expires_at - now) / 2)

    def _raise_for(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        answer = _json(response)
        message = _error_message(answer) or f"HTTP {status}"
        kind: type[ProviderError]
        if status in (401, 403):
            kind = ProviderAuthError
        elif status >= 500:
            kind = ProviderUnavailable
        elif isinstance(answer, dict) and "error" in answer:
            return  # a refusal the normalizer turns into rejected events
        else:
            kind = ProviderRejected
        raise self.transport.error(kind, message, http_status=status)


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _error_message(answer: Any) -> str | None:
    if not isinstance(answer, dict):
        return None
    error = answer.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return str(error)[:300] if error is not None else None


def _expiry(data: dict[str, Any], now: datetime) -> datetime:
    """When the token expires: `expires_in` seconds from now, else `expires_at`."""
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str) and expires_in.strip().isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + timedelta(seconds=min(float(expires_in), 10 * 365 * 86400.0))
    expires_at = data.get("expires_at")
    if isinstance(expires_at, str) and expires_at.strip().isdigit():
        expires_at = int(expires_at)
    if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
        try:
            return datetime.fromtimestamp(float(expires_at), UTC)
        except (OverflowError, OSError, ValueError):
            return now
    if isinstance(expires_at, str):
        try:
            moment = datetime.fromisoformat(expires_at.strip().replace("Z", "+00:00"))
        except ValueError:
            return now  # unreadable: log in again next time rather than trust it
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return now
