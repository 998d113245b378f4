"""`webhook` sink: POST events as JSON, signed the Standard Webhooks way.

| key       | default         | meaning                                                     |
|-----------|-----------------|-------------------------------------------------------------|
| `url`     | (required)      | http(s) URL to POST to                                      |
| `secret`  | (required)      | `whsec_<base64>`; `dlrhub sinks new-secret` makes one       |
| `headers` | none            | extra request headers (values are treated as secrets)       |
| `on_4xx`  | `"dead_letter"` | other 4xx answers: `dead_letter`, `retry` or `pause`        |

Body: with `batch_size = 1` (the default) one event object, the shape of
`Event.to_dict()`; with a larger `batch_size` `{"events": [...]}`. Headers
`webhook-id` (the event id; for a batch `batch_` + a hash of the ids, stable
across retries of the same batch), `webhook-timestamp`, `webhook-signature`
(see `signing.py`). `max_in_flight` is the number of concurrent requests to
the endpoint.

| answer                     | outcome                                              |
|----------------------------|------------------------------------------------------|
| 2xx                        | delivered                                            |
| 410 Gone                   | the sink is disabled until `dlrhub sinks resume`     |
| 429, 503                   | retried after `Retry-After` (or backoff); not an attempt |
| 408, 5xx, timeout, reset   | a failed attempt: retried with backoff               |
| other 4xx                  | per `on_4xx`; by default a dead letter at once       |
| no connection              | the sink is down: retried until it is back           |
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from dlrhub import __version__
from dlrhub.event import Event
from dlrhub.settings_schema import Check, Required
from dlrhub.sinks.backoff import parse_retry_after
from dlrhub.sinks.base import (
    DeliveryFailed,
    DeliveryRejected,
    Sink,
    SinkGone,
    SinkKind,
    SinkPaused,
    SinkUnavailable,
)
from dlrhub.sinks.signing import decode_secret, signature_headers

if TYPE_CHECKING:
    from dlrhub.sinks.settings import SinkConfig

On4xx = Literal["dead_letter", "retry", "pause"]


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)  # the message leaves the URL out: it may hold a key
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    return "must be an http(s) URL"


def _secret_problem(secret: str) -> str | None:
    try:
        key = decode_secret(secret)
    except ValueError as error:
        return str(error)
    return None if len(key) >= 16 else "must decode to 16 or more bytes (24 to 64 advised)"


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    url: Annotated[str, Check(_url_problem), Required("is required for a webhook sink")] = field(
        repr=False
    )
    secret: Annotated[
        str,
        Check(_secret_problem),
        Required("is required: 'whsec_' + base64 (make one: dlrhub sinks new-secret)"),
    ] = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    on_4xx: On4xx = "dead_letter"

    def secrets(self) -> tuple[str, ...]:
        values = [self.secret, self.secret.removeprefix("whsec_"), *self.headers.values()]
        parts = urlsplit(self.url)
        if parts.password:
            values.append(parts.password)
        if parts.query:
            values.append(parts.query)
        return tuple(values)

    @property
    def display_url(self) -> str:
        """The URL without credentials or query string, for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


class WebhookSink:
    def __init__(self, config: SinkConfig) -> None:
        options = config.options
        assert isinstance(options, WebhookOptions)
        self.options = options
        self.timeout = config.timeout
        self.batched = config.batch_size > 1
        self.max_in_flight = config.max_in_flight
        self._key = decode_secret(options.secret)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        limits = httpx.Limits(
            max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight
        )
        # TCP_NODELAY: headers and body go out as separate writes; with Nagle's
        # algorithm the body waits for the peer's delayed ACK (40 ms per request).
        transport = httpx.AsyncHTTPTransport(
            limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            headers={"User-Agent": f"dlrhub/{__version__}"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(self, batch: Sequence[Event]) -> None:
        if self._client is None:
            await self.open()
        assert self._client is not None
        body, message_id = encode_body(batch, batched=self.batched)
        headers = {
            "Content-Type": "application/json",
            **self.options.headers,
            **signature_headers(self._key, message_id, body),
        }
        where = self.options.display_url
        try:
            response = await self._client.post(self.options.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise SinkUnavailable(f"cannot connect to {where}: {type(error).__name__}") from None
        except httpx.TimeoutException:
            raise DeliveryFailed(f"{where} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"POST {where} failed: {type(error).__name__}") from None
        classify_answer(response, where, self.options.on_4xx)


def encode_body(batch: Sequence[Event], *, batched: bool) -> tuple[bytes, str]:
    """The request body and its `webhook-id`."""
    if not batched:
        (event,) = batch
        return event.to_json(), event.id
    body = orjson.dumps({"events": [event.to_dict() for event in batch]})
    digest = hashlib.sha256("\n".join(event.id for event in batch).encode()).hexdigest()
    return body, f"batch_{digest[:32]}"


def classify_answer(response: httpx.Response, where: str, on_4xx: On4xx) -> None:
    """Return on 2xx; otherwise raise the error that tells the engine what to do."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"POST {where} answered {status}{_excerpt(response)}"
    if status == 410:
        raise SinkGone(detail)
    if status in (429, 503):
        raise SinkUnavailable(
            detail, retry_after=parse_retry_after(response.headers.get("retry-after"))
        )
    if 400 <= status < 500 and status != 408:
        if on_4xx == "dead_letter":
            raise DeliveryRejected(detail)
        if on_4xx == "pause":
            raise SinkPaused(detail)
    raise DeliveryFailed(detail, retry_after=parse_retry_after(response.headers.get("retry-after")))


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text[:200].split())
    return f": {text}" if text else ""


def create(config: SinkConfig) -> Sink:
    return WebhookSink(config)


KIND = SinkKind(
    name="webhook",
    options=WebhookOptions,
    create=create,
    batch_size=1,
    max_in_flight=4,
)
