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
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from dlrhub import __version__
from dlrhub.event import Event
from dlrhub.settings_values import ConfigError, read_table, read_text, value_at
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


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    url: str = field(repr=False)
    secret: str = field(repr=False)
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


def parse_options(path: str, table: Mapping[str, Any]) -> WebhookOptions:
    url = value_at(table, "url", f"{path}.url", read_text, None)
    if url is None:
        raise ConfigError(f"{path}.url", "is required for a webhook sink")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}.url", "must be an http(s) URL")
    secret = value_at(table, "secret", f"{path}.secret", read_text, None)
    if secret is None:
        raise ConfigError(
            f"{path}.secret", "is required: 'whsec_' + base64 (make one: dlrhub sinks new-secret)"
        )
    try:
        key = decode_secret(secret)
    except ValueError as error:
        raise ConfigError(f"{path}.secret", str(error)) from None
    if len(key) < 16:
        raise ConfigError(f"{path}.secret", "must decode to 16 or more bytes (24 to 64 advised)")
    headers = {
        str(name): read_text(f"{path}.headers.{name}", value)
        for name, value in read_table(f"{path}.headers", table.get("headers", {})).items()
    }
    on_4xx = value_at(table, "on_4xx", f"{path}.on_4xx", read_text, "dead_letter")
    if on_4xx not in ("dead_letter", "retry", "pause"):
        raise ConfigError(f"{path}.on_4xx", "must be 'dead_letter', 'retry' or 'pause'")
    choice: On4xx = (
        "retry" if on_4xx == "retry" else "pause" if on_4xx == "pause" else "dead_letter"
    )
    return WebhookOptions(url=url, secret=secret, headers=headers, on_4xx=choice)


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
    keys=frozenset({"url", "secret", "headers", "on_4xx"}),
    parse_options=parse_options,
    create=create,
    batch_size=1,
    max_in_flight=4,
)
