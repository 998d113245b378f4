"""Onurix client: `send-sms`, `call/send`, `messages-state` (see providers/onurix-api.txt).

Credentials (`client`, `key`) travel in every form and query, as the document
requires; they are redacted in what is stored and scrubbed from errors.

| answer                        | send                       | state query            |
|-------------------------------|----------------------------|------------------------|
| 200                           | exchange (events)          | exchange (events)      |
| 400 `{error, msg}`            | exchange (rejected events) | `ProviderRejected`     |
| 401 / 403                     | `ProviderAuthError`        | `ProviderAuthError`    |
| 520, 5xx (after the retries)  | `ProviderUnavailable`      | `ProviderUnavailable`  |

The document does not say how a bad key is answered; 401 and 403 are taken as
authentication errors (the `ErrorResponseSecurity` schema, ~l.2684). The state
query takes one `id`; with `group_size` above 1, ids are joined with commas (not
documented: the default group size is 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import orjson

from dlrhub.normalizers.exchange import CHANNEL_PARAM, REFS_PARAM
from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.clients import OutboundMessage
from dlrhub.outbound.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from dlrhub.outbound.transport import Exchange, Transport, encode_request

SEND_SMS = "send-sms"
SEND_CALL = "call/send"
MESSAGES_STATE = "messages-state"
RETRIED_STATUSES = frozenset({520})


def retry_when(response: httpx.Response) -> bool:
    return response.status_code >= 500 or response.status_code in RETRIED_STATUSES


class OnurixClient:
    def __init__(self, account: AccountConfig, transport: Transport) -> None:
        self.account = account
        self.transport = transport

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _credentials(self) -> list[tuple[str, str]]:
        return [
            ("client", self.account.setting("client") or ""),
            ("key", self.account.setting("key") or ""),
        ]

    async def send(self, message: OutboundMessage) -> list[Exchange]:
        form = self._credentials()
        form.append(("phone", ",".join(message.recipients)))
        if message.channel == "call":
            path = SEND_CALL
            if message.text:
                form.append(("message", message.text))
        else:
            path = SEND_SMS
            form.append(("sms", message.text))
        country = message.options.get("country-code") or self.account.setting("country_code")
        if country:
            form.append(("country-code", country))
        form += [(name, value) for name, value in message.options.items() if name != "country-code"]
        response = await self.transport.request(
            "POST", path, idempotent=False, retry_when=retry_when, data=dict(form)
        )
        self._raise_for(response, refusals_are_answers=True)
        record = [*form, (REFS_PARAM, ",".join(message.refs)), (CHANNEL_PARAM, message.channel)]
        return [self.transport.exchange(response, encode_request(record))]

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        params = [*self._credentials(), ("id", ",".join(message_ids))]
        response = await self.transport.request(
            "GET", MESSAGES_STATE, idempotent=True, retry_when=retry_when, params=params
        )
        self._raise_for(response, refusals_are_answers=False)
        return self.transport.exchange(
            response, encode_request([*params, (CHANNEL_PARAM, channel)])
        )

    def _raise_for(self, response: httpx.Response, *, refusals_are_answers: bool) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = _error_of(response)
        kind: type[ProviderError]
        if status in (401, 403):
            kind = ProviderAuthError
        elif status >= 500 or status in RETRIED_STATUSES:
            kind = ProviderUnavailable
        elif refusals_are_answers and status == 400 and code is not None:
            return
        else:
            kind = ProviderRejected
        raise self.transport.error(kind, message or f"HTTP {status}", code=code, http_status=status)


def _error_of(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(answer, dict):
        return None, None
    code, message = answer.get("error"), answer.get("msg")
    return (
        str(code)[:80] if code is not None else None,
        str(message)[:300] if message is not None else None,
    )
