"""UVox client: `sms-api` send and the SMS status query (see providers/uvox-api.txt).

Requests are POST forms (the document's HTML form; its other examples put the
same parameters in the query string). `accountnumber` goes in every request;
`apikey` too, or in the `Api-Key` header when the account sets
`apikey_in = "header"` (the document's curl example).

The status query's path is not in the document: `status_path`, default
`sms-status`, relative to `base_url`.

One send request per recipient: the document shows one `to` and one `id` per
answer. Answers carry their outcome in `code`, whatever the HTTP status:

| code / HTTP                     | send                        | status query          |
|---------------------------------|-----------------------------|-----------------------|
| `005`, `009`                    | exchange (accepted, queued) | -                     |
| `010`-`013`                     | -                           | exchange (events)     |
| `001` (bad key), HTTP 401/403   | `ProviderAuthError`         | `ProviderAuthError`   |
| `500`, HTTP 5xx (after retries) | `ProviderUnavailable`       | `ProviderUnavailable` |
| any other code                  | exchange (rejected event)   | `ProviderRejected`    |
| no `code` (HTML, a proxy's 4xx) | `ProviderRejected` on a 4xx | `ProviderAnswerError` |

A status answer without a `code` is unreadable, never an unknown id: it does not
count toward the poller's `unknown_id`.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import orjson

from dlrhub.normalizers.exchange import REFS_PARAM
from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.clients import OutboundMessage
from dlrhub.outbound.errors import (
    ProviderAnswerError,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
)
from dlrhub.outbound.transport import Exchange, Transport, encode_request
from dlrhub.providers.uvox.answers import BAD_KEY, INTERNAL_PROBLEM, POLL_STATUSES, answer_code

SEND_PATH = "sms-api"
DEFAULT_STATUS_PATH = "sms-status"


def _code(response: httpx.Response) -> str | None:
    try:
        return answer_code(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        return None


def retry_when(response: httpx.Response) -> bool:
    return response.status_code >= 500 or _code(response) == INTERNAL_PROBLEM


class UvoxClient:
    def __init__(self, account: AccountConfig, transport: Transport) -> None:
        self.account = account
        self.transport = transport
        self.status_path = account.setting("status_path") or DEFAULT_STATUS_PATH
        self.key_in_header = account.setting("apikey_in") == "header"

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _credentials(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        form = [("accountnumber", self.account.setting("accountnumber") or "")]
        key = self.account.setting("apikey") or ""
        if self.key_in_header:
            return form, {"Api-Key": key}
        return [*form, ("apikey", key)], {}

    async def send(self, message: OutboundMessage) -> list[Exchange]:
        exchanges = []
        for index, recipient in enumerate(message.recipients):
            form, headers = self._credentials()
            sender = message.sender or self.account.setting("sender") or ""
            text = message.texts[index] if message.texts else message.text
            form += [("from", sender), ("to", recipient), ("text", text)]
            response = await self.transport.request(
                "POST",
                SEND_PATH,
                idempotent=False,
                retry_when=retry_when,
                data=dict(form),
                headers=headers,
            )
            self._raise_for(response, answers=None)
            ref = message.refs[index] if index < len(message.refs) else ""
            record = encode_request([*form, (REFS_PARAM, ref)])
            exchanges.append(self.transport.exchange(response, record))
        return exchanges

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        form, headers = self._credentials()
        form.append(("messageId", ",".join(message_ids)))
        response = await self.transport.request(
            "POST",
            self.status_path,
            idempotent=True,
            retry_when=retry_when,
            data=dict(form),
            headers=headers,
        )
        self._raise_for(response, answers=frozenset(POLL_STATUSES))
        return self.transport.exchange(response, encode_request(form))

    def _raise_for(self, response: httpx.Response, *, answers: frozenset[str] | None) -> None:
        """Raise for failures; `answers` None means any code is an answer (sends)."""
        status = response.status_code
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            document = None
        code = answer_code(document)
        message = document.get("statusmessage") if isinstance(document, dict) else None
        text = str(message)[:300] if message is not None else f"HTTP {status}"
        kind: type[ProviderError] | None = None
        if code == BAD_KEY or status in (401, 403):
            kind = ProviderAuthError
        elif status >= 500 or code == INTERNAL_PROBLEM:
            kind = ProviderUnavailable
        elif code is None:
            if status >= 400 and answers is None:
                kind = ProviderRejected
            elif answers is not None:  # a status answer without a code: never an unknown id
                kind = ProviderAnswerError
                text = "the status answer has no 'code'"
        elif answers is not None and code not in answers:
            kind = ProviderRejected
        if kind is not None:
            raise self.transport.error(kind, text, code=code, http_status=status)
