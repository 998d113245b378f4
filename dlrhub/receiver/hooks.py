"""Provider callback routes: `/hooks/{source}/{kind}`, as a plain ASGI app.

The routes a source serves, and how its callbacks authenticate, are its
provider's (`dlrhub.providers`); nothing here knows a provider.

This is the hot path, so it reads the ASGI scope itself instead of going through
Starlette's routing, middleware and `Request` (that alone cost about a third of
the bare app's time per request; see bench/README.md). The rest of the service
is a Starlette app; `dlrhub.app.DlrhubApp` sends `/hooks/` here first.

Checks run cheapest first: unknown source or route 404, wrong method 405,
address not allowed 403, bad token 401 (nothing stored), wrong content type
415, body over the limit 413, body not all there within `server.body_timeout`
408 (and the connection closed); a check that reads the body (a signature) runs
after the body is read and answers 401 or 403. So a held request keeps at most
`max_body_bytes` for at most `body_timeout`; on more than
`server.limit_concurrency` connections Uvicorn answers 503 itself. A route with
`lenient_content_type` takes any Content-Type when its body parses as JSON, and
answers 415 once the body is read.
Then the callback is normalized and committed (`dlrhub.receiver.ingest`); the
200 answer is sent only after the commit, or 503 with `Retry-After` when the
store fails or does not commit within `server.ingest_timeout`. A payload that
cannot be normalized is quarantined and still answered 200: the provider would
retry anything else, and a retry cannot fix it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from dlrhub.event import RawCallback
from dlrhub.log_limits import LimitedLog
from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import Authenticator, HookRequest, Route
from dlrhub.providers.source import SourceConfig
from dlrhub.receiver.access_log import SOURCE_KEY
from dlrhub.receiver.deadlines import Deadlines
from dlrhub.receiver.errors import INTERNAL_ERROR_DETAIL, error_body, unavailable_detail
from dlrhub.receiver.ingest import Ingester
from dlrhub.receiver.ingest_worker import IngestWorkerError
from dlrhub.receiver.metrics import Metrics
from dlrhub.receiver.request_id import SCOPE_KEY as REQUEST_ID_KEY
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.store import StoreUnavailable

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
RETRY_AFTER_SECONDS = "5"
TEXT = b"text/plain; charset=utf-8"


# Every route kind some provider serves, in registry order.
KINDS = tuple(
    {
        route.kind: None
        for provider in PROVIDERS.values()
        if provider.source is not None
        for route in provider.source.routes
    }
)
PATHS = [f"{PREFIX}{{source}}/{kind}" for kind in KINDS]  # as the OpenAPI document names them


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer: status, body and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = b"application/json"


def error_answer(
    status: int, code: str, detail: str, headers: Iterable[tuple[str, str]] = ()
) -> Answer:
    return Answer(
        status,
        error_body(code, detail),
        tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    )


class Refused(Exception):
    """The request is answered with an error before anything is stored."""

    def __init__(self, outcome: str, answer: Answer) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.answer = answer


@dataclass(slots=True)
class _Headers:
    """The few request headers the hooks read, found in one pass.

    `wanted` holds those the source's authenticator reads, by their lower-case name.
    """

    content_type: str = ""
    content_length: str = ""
    wanted: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: Iterable[tuple[bytes, bytes]], wanted: tuple[str, ...]) -> _Headers:
        found = cls()
        for name, value in raw:  # the first of a repeated header counts, as in Starlette
            if name == b"content-type":
                if not found.content_type:
                    found.content_type = value.decode("latin-1")
            elif name == b"content-length":
                if not found.content_length:
                    found.content_length = value.decode("latin-1")
            else:
                text = name.decode("latin-1")
                if text in wanted and text not in found.wanted:
                    found.wanted[text] = value.decode("latin-1")
        return found


def _too_large(limit: int) -> Refused:
    return Refused(
        "too_large", error_answer(413, "payload_too_large", f"the body is over {limit} bytes")
    )


def _too_slow(seconds: float) -> Refused:
    detail = f"the body did not arrive within {seconds:g} s"
    # Closed after the answer: the rest of a slow body must not hold the connection.
    return Refused(
        "request_timeout",
        error_answer(408, "request_timeout", detail, [("Connection", "close")]),
    )


def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()


def _check_lenient_body(scope: Scope, headers: _Headers, route: Route, body: bytes) -> None:
    """A route whose provider states no Content-Type takes any when the body parses as JSON."""
    given_type = headers.content_type.split(";")[0].strip().lower()
    if scope["method"] == "GET" or given_type == route.content_type:
        return
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        detail = f"got Content-Type {given_type or 'none'} and a body that is not JSON"
        raise Refused(
            "unsupported_media_type", error_answer(415, "unsupported_media_type", detail)
        ) from None


class Hooks:
    """The ASGI app answering provider callbacks under `/hooks/`."""

    def __init__(
        self,
        config: ReceiverSettings,
        ingest: Ingester,
        metrics: Metrics,
        process_label: str | None = None,
    ) -> None:
        self.config = config
        # Which of several receiver processes answered (`server.processes`), for operators.
        self._process_header: tuple[tuple[bytes, bytes], ...] = (
            ((b"x-dlrhub-receiver", process_label.encode("latin-1")),)
            if process_label is not None
            else ()
        )
        self.ingest = ingest
        self.metrics = metrics
        # The routes of each configured source, found once: the hot path does one lookup.
        self.routes: dict[str, tuple[SourceConfig, Authenticator, dict[str, Route]]] = {}
        for source in config.sources:
            spec = PROVIDERS[source.provider].source
            if spec is not None:
                routes = {route.kind: route for route in spec.routes}
                self.routes[source.name] = (source, spec.auth, routes)
                metrics.expect_ingest_kinds(routes)
        self._body_deadlines: Deadlines[asyncio.Task[Any]] = Deadlines(
            config.server.body_timeout, _cancel
        )
        self._unavailable = LimitedLog(log, logging.WARNING)  # 503 answers, counted
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the requests run on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await self.answer(scope, receive, started)
        except IngestWorkerError as error:  # the worker logged the trace, in its process
            log.error(
                "unexpected error on %s %s: %s",
                scope["method"],
                scope["path"],
                error,
                extra={"request_id": scope.get(REQUEST_ID_KEY)},
            )
            answer = error_answer(500, "internal_error", INTERNAL_ERROR_DETAIL)
        except Exception as error:  # never a stack trace to the provider; to the log, once
            log.exception(
                "unexpected error on %s %s: %r",
                scope["method"],
                scope["path"],
                error,
                extra={"request_id": scope.get(REQUEST_ID_KEY)},
            )
            answer = error_answer(500, "internal_error", INTERNAL_ERROR_DETAIL)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type),
                    (b"content-length", str(len(answer.body)).encode("latin-1")),
                    *answer.headers,
                    *self._process_header,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def answer(self, scope: Scope, receive: Receive, started: float) -> Answer:
        name, _, kind_name = scope["path"][len(PREFIX) :].partition("/")
        found = self.routes.get(name)
        if found is None:
            if not name or kind_name not in KINDS:
                return error_answer(404, "not_found", "Not Found")
            self._count("", kind_name, "unknown_source")
            return error_answer(404, "unknown_source", f"no source named {name!r} is configured")
        source, auth, routes = found
        scope[SOURCE_KEY] = source.name  # for the access line
        route = routes.get(kind_name)
        if route is None:
            return error_answer(404, "not_found", "Not Found")
        if scope["method"] not in route.methods:
            allowed = ", ".join(route.methods)
            return error_answer(
                405, "method_not_allowed", "Method Not Allowed", [("Allow", allowed)]
            )
        client = scope.get("client")
        address = client[0] if client else None
        try:
            headers = _Headers.read(scope["headers"], auth.headers)
            self._check(scope, address, headers, route, source, auth)
            body = await self._read_body(receive, headers)
            if route.lenient_content_type:
                _check_lenient_body(scope, headers, route, body)
            if auth.needs_body:
                self._authenticate(scope, headers, source, auth, body)
        except Refused as refused:
            self._count(source.name, route.kind, refused.outcome)
            return refused.answer
        raw = self._raw_callback(scope, address, headers, route, source, body)
        try:
            ingested = await self.ingest(raw)
        except StoreUnavailable as error:
            self._count(source.name, route.kind, "store_unavailable")
            self._unavailable.happened("callbacks answered 503, the last because %s", error)
            return error_answer(
                503,
                "store_unavailable",
                unavailable_detail(error),
                [("Retry-After", RETRY_AFTER_SECONDS)],
            )
        if self._unavailable.ongoing:
            self._unavailable.ended("callbacks are stored again after 503 answers")
        if ingested.reason is not None and not ingested.duplicate:
            log.warning(
                "quarantined a %s callback from source %s as entry %s: %s (request_id=%s)",
                route.kind,
                source.name,
                ingested.quarantine_id,
                ingested.reason,
                raw.request_id,
                extra={
                    "source": source.name,
                    "request_id": raw.request_id,
                    "quarantine_id": ingested.quarantine_id,
                },
            )
        self._count(source.name, route.kind, "duplicate" if ingested.duplicate else ingested.status)
        self.metrics.observe_ingest(route.kind, time.perf_counter() - started)
        if route.ack is not None:
            return Answer(200, route.ack, content_type=TEXT)
        answer: dict[str, object] = {
            "status": ingested.status,
            "duplicate": ingested.duplicate,
            "event_ids": ingested.event_ids,
        }
        if ingested.quarantine_id is not None:
            answer["quarantine_id"] = ingested.quarantine_id
        return Answer(200, orjson.dumps(answer))

    def _check(
        self,
        scope: Scope,
        address: str | None,
        headers: _Headers,
        route: Route,
        source: SourceConfig,
        auth: Authenticator,
    ) -> None:
        if not source.allows(address):
            # Behind a proxy the address may be the proxy's: the log names it, not the answer.
            log.warning("refused a callback to source %s from address %s", source.name, address)
            raise Refused(
                "forbidden",
                error_answer(403, "forbidden", "the calling address may not call this source"),
            )
        if not auth.needs_body:
            self._authenticate(scope, headers, source, auth, b"")
        if route.content_type is not None and scope["method"] != "GET":
            given_type = headers.content_type.split(";")[0].strip().lower()
            if given_type != route.content_type and not route.lenient_content_type:
                raise Refused(
                    "unsupported_media_type",
                    error_answer(
                        415,
                        "unsupported_media_type",
                        f"expected Content-Type {route.content_type}, got {given_type or 'none'}",
                    ),
                )

    def _authenticate(
        self,
        scope: Scope,
        headers: _Headers,
        source: SourceConfig,
        auth: Authenticator,
        body: bytes,
    ) -> None:
        request = HookRequest(
            method=scope["method"],
            url=self._called_url(scope) if auth.needs_body else "",
            query_string=scope["query_string"],
            headers=headers.wanted,
            body=body,
        )
        if auth(request, source.token):
            return
        if auth.challenge is None:
            raise Refused(
                "forbidden",
                error_answer(403, "forbidden", "missing or wrong signature of the callback"),
            )
        raise Refused(
            "unauthorized",
            error_answer(
                401,
                "unauthorized",
                "missing or wrong source token (use ?token=... or HTTP Basic)",
                [("WWW-Authenticate", auth.challenge)],
            ),
        )

    def _called_url(self, scope: Scope) -> str:
        """The URL as the provider called it: from `server.public_url`, never the Host header."""
        query = scope["query_string"].decode("latin-1")
        path = scope.get("root_path", "") + scope["path"]
        base = self.config.server.public_url
        if base is None:
            host, port = scope.get("server") or ("127.0.0.1", 80)
            scheme = scope.get("scheme", "http")
            default = {"http": 80, "https": 443}.get(scheme)
            if ":" in host:  # an IPv6 address is written in brackets in a URL
                host = f"[{host}]"
            base = f"{scheme}://{host}" + ("" if port == default else f":{port}")
        return f"{base}{path}?{query}" if query else f"{base}{path}"

    async def _read_body(self, receive: Receive, headers: _Headers) -> bytes:
        """The whole body, within `server.body_timeout` (else 408) and `max_body_bytes` (413)."""
        limit = self.config.server.max_body_bytes
        declared = headers.content_length
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        # The deadline cancels this task (one timer for all requests, see deadlines.py); the
        # cancellation is turned into the 408 here, the only place where it can arrive.
        task = self._current_task()
        key = self._body_deadlines.add(task, task.get_loop())
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refused(
                        "client_disconnected",
                        error_answer(400, "client_disconnected", "the client went away mid-body"),
                    )
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except asyncio.CancelledError:
            if self._body_deadlines.discard(key) or task.uncancel():
                raise  # not the deadline's doing (a shutdown), or not only its
            raise _too_slow(self._body_deadlines.seconds) from None
        finally:
            self._body_deadlines.discard(key)

    def _current_task(self) -> asyncio.Task[Any]:
        """This request's task; asked of the loop seen last, which spares a getpid() call."""
        task = asyncio.current_task(self._loop) if self._loop is not None else None
        if task is None:
            task = asyncio.current_task()
            assert task is not None  # ASGI apps run in a task
            self._loop = task.get_loop()
        return task

    def _raw_callback(
        self,
        scope: Scope,
        address: str | None,
        headers: _Headers,
        route: Route,
        source: SourceConfig,
        body: bytes,
    ) -> RawCallback:
        """The callback as received: `Ingest` redacts it after normalizing and deduplicating."""
        return RawCallback(
            source=source.name,
            provider=source.provider,
            kind=route.kind,
            method=scope["method"],
            query=scope["query_string"].decode("latin-1"),
            content_type=headers.content_type,
            body=body,
            received_at=datetime.now(UTC),
            remote_addr=address,
            request_id=scope.get(REQUEST_ID_KEY),
        )

    def _count(self, source: str, kind: str, outcome: str) -> None:
        self.metrics.count_callback(source, kind, outcome)
