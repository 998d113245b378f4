"""HTTP to a provider: timeouts, retries with backoff, and redaction of every trace.

One `Transport` per account wraps an `httpx.AsyncClient`. A request is retried
when nothing reached the provider (connect errors), when the provider failed
(5xx, Onurix's 520) and, for idempotent requests (status queries), after a read
timeout; never after a read timeout of a send, which may have gone out. Waits
double from the account's `backoff`, with jitter, up to 30 s. A 429 is not
retried here: it raises `ProviderBusy` with the answer's `Retry-After`, and the
caller slows the whole account down (the poller holds it for that long).

Every attempt, retries included, first waits for its turn in the account's
`rate_limit` (`dlrhub.outbound.ratelimit`, shared through the store by every
process that talks to the account).

The exchange is kept as an `Exchange`: the redacted request (what the event log
stores as the raw payload's query) and the answer as received.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from dlrhub.event import RawCallback
from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.errors import ProviderBusy, ProviderError, ProviderUnavailable
from dlrhub.outbound.ratelimit import RateLimiter
from dlrhub.redact import REDACTED, redact_query, redact_text
from dlrhub.retry_after import parse_retry_after

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request to a provider and its answer, with the request already redacted."""

    method: str
    request: str
    status_code: int
    content_type: str
    body: bytes
    received_at: datetime

    def raw(self, account: AccountConfig, kind: str) -> RawCallback:
        """The exchange as the event log stores it (see dlrhub.normalizers.exchange)."""
        return RawCallback(
            source=account.name,
            provider=account.provider,
            kind=kind,
            method=self.method,
            query=self.request,
            content_type=self.content_type,
            body=self.body,
            received_at=self.received_at,
        )


def encode_request(params: Sequence[tuple[str, str]] | Mapping[str, str]) -> str:
    """Form-encode request parameters and redact the secret ones."""
    return redact_query(urlencode(list(params.items()) if isinstance(params, Mapping) else params))


def is_server_failure(response: httpx.Response) -> bool:
    return response.status_code >= 500


POOL_SHARD = 4  # requests in flight per connection pool (see `Transport.__init__`)


def _client(account: AccountConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(account.timeout),
        limits=httpx.Limits(
            max_connections=POOL_SHARD * 2, max_keepalive_connections=POOL_SHARD * 2
        ),
        follow_redirects=False,
    )


class Transport:
    """Requests to one account's provider, with retries and scrubbed errors."""

    def __init__(
        self,
        account: AccountConfig,
        http: httpx.AsyncClient | None = None,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        limiter: RateLimiter | None = None,
    ) -> None:
        self.account = account
        # None: no limit here (the caller spaces requests itself, or a test).
        self.limiter = limiter
        self._own_http = http is None
        # Several small connection pools rather than one large one: httpcore checks every
        # connection of a pool (a syscall each) whenever a request starts or ends, so the
        # CPU per request grows with the pool (3 ms at 64 connections, 0.7 ms at 8; see
        # bench/README.md). A request takes the pool with the fewest requests in flight.
        shards = -(-max(account.concurrency, 1) // POOL_SHARD) if http is None else 1
        self.pools = [http] if http is not None else [_client(account) for _ in range(shards)]
        self.http = self.pools[0]
        self._in_flight = [0] * len(self.pools)
        self.sleep = sleep
        self.now = now
        # Credentials, plus any the client learns (Conectaline's temporary token).
        self.secrets: set[str] = set(account.secrets)

    async def aclose(self) -> None:
        if self._own_http:
            for pool in self.pools:
                await pool.aclose()

    def url(self, path: str) -> str:
        return f"{self.account.base_url}/{path.lstrip('/')}"

    def scrub(self, text: str) -> str:
        """`text` without any credential, whether written plain or percent-encoded."""
        variants = {form for secret in self.secrets for form in (secret, quote(secret, safe=""))}
        return redact_text(text, variants)

    def error(
        self,
        kind: type[ProviderError],
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
    ) -> ProviderError:
        return kind(
            self.account.name,
            self.account.provider,
            self.scrub(message),
            code=self.scrub(code) if code is not None else None,
            http_status=http_status,
        )

    def busy(self, response: httpx.Response) -> ProviderBusy:
        """A 429, with the provider's `Retry-After` (seconds or an HTTP date)."""
        return ProviderBusy(
            self.account.name,
            self.account.provider,
            "too many requests (HTTP 429)",
            http_status=429,
            retry_after=parse_retry_after(response.headers.get("retry-after"), self.now()),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        retry_when: Callable[[httpx.Response], bool] = is_server_failure,
        **options: Any,
    ) -> httpx.Response:
        """The provider's answer; retried per the module docstring."""
        url = self.url(path)
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt > self.account.retries
            if self.limiter is not None:
                await self.limiter.acquire()
            try:
                response, body = await self._send(method, url, options)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                failure = f"could not connect: {type(exc).__name__} {exc}"
            except httpx.TimeoutException as exc:
                if not idempotent:
                    raise self.error(
                        ProviderUnavailable,
                        f"no answer within {self.account.timeout:g}s; the request may have "
                        f"been taken ({type(exc).__name__}), so it is not sent again",
                    ) from None
                failure = f"no answer within {self.account.timeout:g}s ({type(exc).__name__})"
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not idempotent:
                    raise self.error(
                        ProviderUnavailable,
                        f"the connection broke mid-request ({type(exc).__name__}); "
                        "it may have been taken, so it is not sent again",
                    ) from None
                failure = f"the connection broke ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                raise self.error(
                    ProviderUnavailable, f"HTTP failure: {type(exc).__name__} {exc}"
                ) from None
            else:
                if len(body) > MAX_ANSWER_BYTES:
                    raise self.error(
                        ProviderUnavailable, f"answer larger than {MAX_ANSWER_BYTES} bytes"
                    )
                if response.status_code == 429:
                    raise self.busy(response)
                if not retry_when(response) or last_try:
                    return response
                failure = f"HTTP {response.status_code}"
            if last_try:
                raise self.error(
                    ProviderUnavailable, f"{failure}, after {attempt} attempt(s)"
                ) from None
            delay = min(self.account.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
            delay *= 0.5 + random.random() / 2
            log.info(
                "%s account %s: %s; retry %d of %d in %.2fs",
                self.account.provider,
                self.account.name,
                self.scrub(failure),
                attempt,
                self.account.retries,
                delay,
            )
            await self.sleep(delay)

    async def _send(
        self, method: str, url: str, options: Mapping[str, Any]
    ) -> tuple[httpx.Response, bytes]:
        """One attempt, on the pool with the fewest requests in flight."""
        shard = self._in_flight.index(min(self._in_flight))
        self._in_flight[shard] += 1
        try:
            response = await self.pools[shard].request(method, url, **options)
            return response, await response.aread()
        finally:
            self._in_flight[shard] -= 1

    def exchange(self, response: httpx.Response, request: str) -> Exchange:
        return Exchange(
            method=response.request.method,
            request=request,
            status_code=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content,
            received_at=self.now(),
        )


class RedactingUrlFilter(logging.Filter):
    """Redacts secret query parameters in the URLs httpx logs ("HTTP Request: GET ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(arg) for arg in record.args)
        elif isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _redacted_url(record.msg)
        return True


def _redacted_arg(arg: object) -> object:
    if isinstance(arg, httpx.URL):
        return _redacted_url(str(arg))
    if isinstance(arg, str) and "?" in arg:
        return _redacted_url(arg)
    return arg


def _redacted_url(text: str) -> str:
    head, separator, query = text.partition("?")
    if not separator:
        return text
    fragment_free, hash_mark, fragment = query.partition("#")
    return f"{head}?{redact_query(fragment_free)}{hash_mark}{fragment}"


def install_log_redaction() -> None:
    """Make sure httpx's own request log never shows a key (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingUrlFilter) for existing in logger.filters):
            logger.addFilter(RedactingUrlFilter())


install_log_redaction()

__all__ = ["REDACTED", "Exchange", "Transport", "encode_request", "install_log_redaction"]
