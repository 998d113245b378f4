"""Onurix client: `send-sms`, `call/send`, `messages-state` (see providers/onurix-api.txt).

Credentials (`client`, `key`) travel in every form and query, as the document
requires; they are redacted in what is stored and scrubbed from errors.

| answer                        | send                       | state query            |
|-------------------------------|----------------------------|------------------------|
| 200                           | exchange (events)          | exchange (events)      |
| 400 `{error, msg}`            | exchange (rejected events) | `ProviderRejected`     |
| other 4xx without that body   | `ProviderRejected`         | `ProviderAnswerError`  |
| 401 / 403                     | `ProviderAuthError`        | `ProviderAuthError`    |
| 429                           | `ProviderBusy` (transport) | `ProviderBusy`         |
| 520, by its body (below)      |                            |                        |
|   about the credentials       | `ProviderAuthError`        | `ProviderAuthError`    |
|   about the id / no message   | exchange (rejected events) | `ProviderRejected`     |
|   anything else               | `ProviderUnavailable`      | `ProviderUnavailable`  |
| other 5xx (after the retries) | `ProviderUnavailable`      | `ProviderUnavailable`  |

## The 520 body

520 "Parametros invalidos" is the only error the document shows, for sends and
state queries alike (~l.197, ~l.660, ~l.2367), with an `{error, msg}` body
(`ErrorResponse`, ~l.2641) whose values it does not list. So the body's words
decide; they are compared without accents or case, and a word matches a whole
word of `error` or `msg` or the start of one (`client` matches `cliente`, `id`
matches `id` and `identificador` but not `invalido`):

| a word of the body is in     | default words                    | means                  |
|------------------------------|----------------------------------|------------------------|
| `auth_words` (checked first) | `key`, `client`, `credencial`,   | bad credentials: not   |
|                              | `autentic`, `token`              | retried; the poller    |
|                              |                                  | pauses the account     |
| `unknown_id_words`           | `id`, `no existe`,               | the id is unknown: not |
|                              | `no encontrado`, `not found`     | retried; counts toward |
|                              |                                  | `unknown_id`           |
| neither                      |                                  | an outage: retried,    |
|                              |                                  | `ProviderUnavailable`  |

Each list is configurable per account, as comma-separated text that replaces
the defaults (`auth_words = "key, clave"`, `unknown_id_words = "desconocido"`).

The document does not say how a bad key is answered; 401 and 403 are also taken as
authentication errors (the `ErrorResponseSecurity` schema, ~l.2684). The state
query takes one `id`; with `group_size` above 1, ids are joined with commas (not
documented: the default group size is 1).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import httpx
import orjson

from dlrhub.normalizers.exchange import CHANNEL_PARAM, REFS_PARAM
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

SEND_SMS = "send-sms"
SEND_CALL = "call/send"
MESSAGES_STATE = "messages-state"
RETRIED_STATUSES = frozenset({520})
DEFAULT_AUTH_WORDS = ("key", "client", "credencial", "autentic", "token")
DEFAULT_UNKNOWN_ID_WORDS = ("id", "no existe", "no encontrado", "not found")

ErrorKind = Literal["auth", "unknown_id", "outage"]


class ErrorWords:
    """Which words of a 520 body mean what (the module docstring's table)."""

    def __init__(self, auth: Sequence[str], unknown_id: Sequence[str]) -> None:
        self.auth = _words_pattern(auth)
        self.unknown_id = _words_pattern(unknown_id)

    @classmethod
    def of(cls, account: AccountConfig) -> ErrorWords:
        """The account's `auth_words` / `unknown_id_words`, else the defaults."""
        auth, unknown_id = account.setting("auth_words"), account.setting("unknown_id_words")
        return cls(
            DEFAULT_AUTH_WORDS if auth is None else auth.split(","),
            DEFAULT_UNKNOWN_ID_WORDS if unknown_id is None else unknown_id.split(","),
        )

    def kind(self, *texts: str | None) -> ErrorKind:
        text = _folded(" ".join(text for text in texts if text))
        if self.auth is not None and self.auth.search(text):
            return "auth"
        if self.unknown_id is not None and self.unknown_id.search(text):
            return "unknown_id"
        return "outage"


def _folded(text: str) -> str:
    """Lower case, without accents (`Autenticación` is `autenticacion`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _words_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """A pattern finding any of `words` at the start of a word (spaces: any blanks)."""
    terms = [r"\s+".join(map(re.escape, _folded(word).split())) for word in words]
    terms = [term for term in terms if term]
    # Not after a letter or digit: `_` and punctuation start a word (`invalid_token`).
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(terms)})") if terms else None


class OnurixClient:
    def __init__(self, account: AccountConfig, transport: Transport) -> None:
        self.account = account
        self.transport = transport
        self.words = ErrorWords.of(account)

    def retry_when(self, response: httpx.Response) -> bool:
        """5xx and 520 are retried, unless a 520's body says credentials or an unknown id."""
        if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
            return False
        return self._kind_of(response) == "outage"

    def _kind_of(self, response: httpx.Response) -> ErrorKind:
        if response.status_code not in RETRIED_STATUSES:
            return "outage"
        return self.words.kind(*_error_of(response))

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
            "POST", path, idempotent=False, retry_when=self.retry_when, data=dict(form)
        )
        self._raise_for(response, refusals_are_answers=True)
        record = [*form, (REFS_PARAM, ",".join(message.refs)), (CHANNEL_PARAM, message.channel)]
        return [self.transport.exchange(response, encode_request(record))]

    async def status(self, message_ids: Sequence[str], channel: str = "sms") -> Exchange:
        params = [*self._credentials(), ("id", ",".join(message_ids))]
        response = await self.transport.request(
            "GET", MESSAGES_STATE, idempotent=True, retry_when=self.retry_when, params=params
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
        meaning = self._kind_of(response) if status >= 500 or status in RETRIED_STATUSES else None
        if status in (401, 403) or meaning == "auth":
            kind = ProviderAuthError
        elif meaning == "unknown_id":
            if refusals_are_answers:
                return
            kind = ProviderRejected
        elif meaning == "outage":
            kind = ProviderUnavailable
        elif not refusals_are_answers and code is None and message is None:
            # Not the documented `{error, msg}` (an HTML page, a proxy's 404): an answer
            # we cannot read, never a verdict on the id.
            kind = ProviderAnswerError
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
