"""`webhook` sink: POST events as JSON, signed the Standard Webhooks way.

| key             | default         | meaning                                                |
|-----------------|-----------------|--------------------------------------------------------|
| `url`           | (required)      | http(s) URL to POST to                                 |
| `secret`        | (required)      | `whsec_<base64>`; `dlrhub sinks new-secret` makes one; |
|                 |                 | a list to roll keys: each delivery is signed with each |
| `headers_style` | `"standard"`    | `standard` (`webhook-*`), `svix` (`svix-*`) or `both`  |
| `headers`       | none            | extra request headers (values are treated as secrets)  |
| `on_4xx`        | `"dead_letter"` | other 4xx answers: `dead_letter`, `retry` or `pause`   |
| `allow_private` | false           | may POST to loopback, link-local and private addresses |

Body: with `batch_size = 1` (the default) one event object, the shape of
`Event.to_dict()`; with a larger `batch_size` `{"events": [...]}`. Headers
`webhook-id` (the event id; for a batch `batch_` + a hash of the ids, stable
across retries of the same batch), `webhook-timestamp`, `webhook-signature`
(one `v1,` signature per secret; see `signing.py`, which also says what
`headers_style` changes). `max_in_flight` is the number of concurrent
requests to the endpoint.

| answer                     | outcome                                              |
|----------------------------|------------------------------------------------------|
| 2xx                        | delivered                                            |
| 410 Gone                   | the sink is disabled until `dlrhub sinks resume`     |
| 429, 503                   | retried after `Retry-After` (or backoff); not an attempt |
| 408, 5xx, timeout, reset   | a failed attempt: retried with backoff               |
| other 4xx                  | per `on_4xx`; by default a dead letter at once       |
| no connection              | the sink is down: retried until it is back           |
| address not allowed        | paused until `dlrhub sinks resume`; nothing is sent  |

Where a webhook may connect (`dlrhub/sinks/addresses.py`): by default only to
public addresses, never to loopback, link-local, private or cloud metadata
ones, since whoever controls the URL's DNS (or writes the URL) would otherwise
have dlrhub POST into the network it runs in. The URL's host is checked when
the configuration is read, and again at delivery, where the address checked
must be the address connected to: httpx resolves host names itself, just
before connecting, so a check made beforehand could be answered with a public
address and the connection with a private one (DNS rebinding). The sink's
httpx transport therefore connects through `CheckedNetwork`, an httpcore
network backend that resolves the host once per new connection, refuses the
connection if any of its addresses is refused, and connects to those checked
addresses themselves. Only the TCP connection changes: the URL, its Host
header, TLS SNI and certificate checks still use the host name. (The other way,
resolving in `deliver` and sending to the address with the Host header and SNI
set by hand, would resolve on every POST instead of every connection, and
fight the connection pool.) A refused address is a configuration problem, not
a delivery that may succeed later: the sink pauses (as with `on_4xx = "pause"`)
with the reason as its last error, instead of retrying or dead-lettering every
event; after fixing the URL, its DNS or `allow_private`, `dlrhub sinks resume`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

import httpcore
import httpx
import orjson

from dlrhub import __version__
from dlrhub.event import Event
from dlrhub.retry_after import parse_retry_after
from dlrhub.settings_schema import Check, Required
from dlrhub.sinks.addresses import address_problem, url_problem
from dlrhub.sinks.base import (
    DeliveryFailed,
    DeliveryRejected,
    Sink,
    SinkGone,
    SinkKind,
    SinkPaused,
    SinkUnavailable,
)
from dlrhub.sinks.signing import HeadersStyle, decode_secret, signature_headers

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


def _secrets_problem(secrets: tuple[str, ...]) -> str | None:
    return None if secrets else "must hold at least one secret"


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    url: Annotated[str, Check(_url_problem), Required("is required for a webhook sink")] = field(
        repr=False
    )
    # one secret, or several while a key is rolled (`a,b` from a variable)
    secret: Annotated[
        tuple[Annotated[str, Check(_secret_problem)], ...],
        Check(_secrets_problem),
        Required("is required: 'whsec_' + base64 (make one: dlrhub sinks new-secret)"),
    ] = field(repr=False)
    headers_style: HeadersStyle = "standard"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    on_4xx: On4xx = "dead_letter"
    allow_private: bool = False

    def problems(self) -> Iterator[tuple[str, str]]:
        problem = url_problem(self.url, allow_private=self.allow_private)
        if problem is not None:
            yield "url", problem

    def secrets(self) -> tuple[str, ...]:
        values = [
            form for secret in self.secret for form in (secret, secret.removeprefix("whsec_"))
        ]
        values += self.headers.values()
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
        self._keys = tuple(decode_secret(secret) for secret in options.secret)
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            transport=checked_transport(self.max_in_flight, self.options.allow_private),
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
            **signature_headers(self._keys, message_id, body, style=self.options.headers_style),
        }
        where = self.options.display_url
        try:
            response = await self._client.post(self.options.url, content=body, headers=headers)
        except AddressRefused as error:
            raise SinkPaused(f"{where}: {error}") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise SinkUnavailable(f"cannot connect to {where}: {type(error).__name__}") from None
        except httpx.TimeoutException:
            raise DeliveryFailed(f"{where} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"POST {where} failed: {type(error).__name__}") from None
        classify_answer(response, where, self.options.on_4xx)


class AddressRefused(Exception):
    """The webhook's host resolves to an address this sink may not connect to."""


class CheckedNetwork(httpcore.AsyncNetworkBackend):
    """TCP connections to the addresses `address_problem` allows, and only those.

    The host is resolved here, once per connection; every address it resolves to
    is judged, and the connection goes to those addresses (in resolver order),
    never to a second lookup's answer.
    """

    def __init__(
        self, *, allow_private: bool, network: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.allow_private = allow_private
        self._network = network or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout}s") from None
        except OSError as error:  # the name does not resolve: the sink is down, as before
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        addresses = list(dict.fromkeys(str(address[0]) for *_, address in found))
        for address in addresses:
            problem = address_problem(
                ipaddress.ip_address(address), allow_private=self.allow_private
            )
            if problem is not None:
                raise AddressRefused(f"{host} resolves to {address}, {problem}")
        failure: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                return await self._network.connect_tcp(
                    address,
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def checked_transport(max_in_flight: int, allow_private: bool) -> httpx.AsyncHTTPTransport:
    """httpx's transport, connecting through `CheckedNetwork` (module docstring)."""
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    # TCP_NODELAY: headers and body go out as separate writes; with Nagle's
    # algorithm the body waits for the peer's delayed ACK (40 ms per request).
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=options)
    # httpx takes no network backend, so its pool is made again, with the same
    # settings and ours, through httpcore's public API (tests/sinks/test_addresses.py
    # shows the check is in force, should a later httpx build its pool otherwise).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        socket_options=options,
        network_backend=CheckedNetwork(allow_private=allow_private),
    )
    return transport


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
