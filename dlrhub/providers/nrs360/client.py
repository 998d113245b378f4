"""360NRS client: send, per-message info and the events report (see providers/360nrs-api.txt).

HTTP Basic `username:password` (the API password) on every request (~l.1).

- `send`: `POST sms` with JSON `{to, from, message, notificationUrl}` (~l.20).
  `notificationUrl` is one URL per recipient, pointing at dlrhub's own `dlr`
  hook with the source token and that recipient's `ref` (built by the sender,
  see `dlrhub.outbound.sending`). 202 and 207 answers, and 400/402 answers with
  an `error` object, are exchanges the normalizer turns into accepted or
  rejected events; 401 (codes 103, 112) is a `ProviderAuthError`; 5xx is
  retried, then a `ProviderUnavailable`.
- `status`: `GET sms/<id,id,...>` (~l.305), up to `group_size` ids (default 50).
- `events_report`: `GET sendings/<id>/reports/events?afterDate&beforeDate`
  (~l.8027), dates in ISO 8601 encoded per RFC 3986 (`+` as `%2B`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.clients import OutboundMessage
from dlrhub.outbound.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from dlrhub.outbound.transport import Exchange, Transport
from dlrhub.providers.nrs360.answers import REFS_KEY
from dlrhub.redact import redact_query

SEND = "sms"
ANSWERED_REFUSALS = frozenset({400, 402, 422})


class Nrs360Client:
    def __init__(self, account: AccountConfig, transport: Transport) -> None:
        self.account = account
        self.transport = transport
        self.auth = httpx.BasicAuth(
            account.setting("username") or "", account.setting("password") or ""
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def send(self, message: OutboundMessage) -> list[Exchange]:
        request: dict[str, Any] = {
            "to": list(message.recipients),
            "from": message.sender or self.account.setting("sender") or "",
            "message": message.text,
        }
        if message.notification_urls:
            request["notificationUrl"] = list(message.notification_urls)
        request.update(message.options)
        response = await self.transport.request(
            "POST", SEND, idempotent=False, json=request, auth=self.auth
        )
        self._raise_for(response, refusals_are_answers=True)
        record = dict(request)
        if message.notification_urls:
            record["notificationUrl"] = [_redacted_url(url) for url in message.notification_urls]
        record[REFS_KEY] = list(message.refs)
        return [self.transport.exchange(response, orjson.dumps(record).decode())]

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        ids = ",".join(quote(message_id, safe="") for message_id in message_ids)
        response = await self.transport.request(
            "GET", f"{SEND}/{ids}", idempotent=True, auth=self.auth
        )
        self._raise_for(response, refusals_are_answers=False)
        return self.transport.exchange(response, f"ids={quote(','.join(message_ids), safe=',')}")

    async def events_report(self, sending_id: str, after: datetime, before: datetime) -> Exchange:
        query = (
            f"afterDate={quote(after.isoformat(timespec='seconds'), safe='')}"
            f"&beforeDate={quote(before.isoformat(timespec='seconds'), safe='')}"
        )
        path = f"sendings/{quote(sending_id, safe='')}/reports/events?{query}"
        response = await self.transport.request("GET", path, idempotent=True, auth=self.auth)
        self._raise_for(response, refusals_are_answers=False)
        return self.transport.exchange(response, f"sendingId={quote(sending_id, safe='')}&{query}")

    def _raise_for(self, response: httpx.Response, *, refusals_are_answers: bool) -> None:
        status = response.status_code
        if status < 400:
            return
        code, description = _error_of(response)
        kind: type[ProviderError]
        if status == 401:
            kind = ProviderAuthError
        elif status >= 500:
            kind = ProviderUnavailable
        elif refusals_are_answers and status in ANSWERED_REFUSALS and code is not None:
            return
        else:
            kind = ProviderRejected
        raise self.transport.error(
            kind, description or f"HTTP {status}", code=code, http_status=status
        )


def _error_of(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None, None
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, description = error.get("code"), error.get("description")
    return (
        str(code)[:80] if code is not None else None,
        str(description)[:300] if description is not None else None,
    )


def _redacted_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=redact_query(parts.query)))
