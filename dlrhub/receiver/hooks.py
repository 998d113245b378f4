"""Provider callback routes: `/hooks/{source}/events|dlr|progress`, as a plain ASGI app.

This is the hot path, so it reads the ASGI scope itself instead of going through
Starlette's routing, middleware and `Request` (that alone cost about a third of
the bare app's time per request; see bench/README.md). The rest of the service
is a Starlette app; `dlrhub.app.DlrhubApp` sends `/hooks/` here first.

Checks run cheapest first: unknown source 404, address not allowed 403, bad
token 401 (nothing stored), wrong content type 415, body over the limit 413.
Then the callback is normalized and committed (`dlrhub.receiver.ingest`); the
200 answer is sent only after the commit. A payload that cannot be normalized is
quarantined and still answered 200: the provider would retry anything else, and
a retry cannot fix it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.types import Receive, Scope, Send

from dlrhub.config import Config, SourceConfig
from dlrhub.normalizers import RawCallback
from dlrhub.receiver.auth import verify_source_token
from dlrhub.receiver.errors import INTERNAL_ERROR_DETAIL, error_body
from dlrhub.receiver.ingest import Ingester
from dlrhub.receiver.ingest_worker import IngestWorkerError
from dlrhub.receiver.metrics import Metrics
from dlrhub.redact import redact_form, redact_query
from dlrhub.store import StoreUnavailable

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True, slots=True)
class HookKind:
    name: str
    method: str
    content_type: str | None  # None: no body expected (GET)


KINDS = {
    kind.name: kind
    for kind in (
        HookKind("events", "POST", FORM),
        HookKind("dlr", "GET", None),
        HookKind("progress", "POST", JSON),
    )
}
PATHS = [f"{PREFIX}{{source}}/{name}" for name in KINDS]  # as the OpenAPI document names them


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer: status, body and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


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
    """The few request headers the hooks read, found in one pass."""

    content_type: str = ""
    content_length: str = ""
    authorization: str = ""

    @classmethod
    def read(cls, raw: Iterable[tuple[bytes, bytes]]) -> _Headers:
        found = cls()
        for name, value in raw:  # the first of a repeated header counts, as in Starlette
            if name == b"content-type" and not found.content_type:
                found.content_type = value.decode("latin-1")
            elif name == b"content-length" and not found.content_length:
                found.content_length = value.decode("latin-1")
            elif name == b"authorization" and not found.authorization:
                found.authorization = value.decode("latin-1")
        return found


def _too_large(limit: int) -> Refused:
    return Refused(
        "too_large", error_answer(413, "payload_too_large", f"the body is over {limit} bytes")
    )


class Hooks:
    """The ASGI app answering provider callbacks under `/hooks/`."""

    def __init__(self, config: Config, ingest: Ingester, metrics: Metrics) -> None:
        self.config = config
        self.ingest = ingest
        self.metrics = metrics
        metrics.expect_ingest_kinds(KINDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await self.answer(scope, receive, started)
        except IngestWorkerError as error:  # the worker logged the trace, in its process
            log.error("unexpected error on %s %s: %s", scope["method"], scope["path"], error)
            answer = error_answer(500, "internal_error", INTERNAL_ERROR_DETAIL)
        except Exception as error:  # never a stack trace to the provider; to the log, once
            log.exception("unexpected error on %s %s: %r", scope["method"], scope["path"], error)
            answer = error_answer(500, "internal_error", INTERNAL_ERROR_DETAIL)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer.body)).encode("latin-1")),
                    *answer.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def answer(self, scope: Scope, receive: Receive, started: float) -> Answer:
        name, _, kind_name = scope["path"][len(PREFIX) :].partition("/")
        kind = KINDS.get(kind_name)
        if kind is None or not name:
            return error_answer(404, "not_found", "Not Found")
        if scope["method"] != kind.method:
            return error_answer(
                405, "method_not_allowed", "Method Not Allowed", [("Allow", kind.method)]
            )
        source = self.config.source(name)
        if source is None:
            self._count("", kind, "unknown_source")
            return error_answer(404, "unknown_source", f"no source named {name!r} is configured")
        client = scope.get("client")
        address = client[0] if client else None
        try:
            headers = _Headers.read(scope["headers"])
            self._check(scope, address, headers, kind, source)
            body = await self._read_body(receive, headers)
        except Refused as refused:
            self._count(source.name, kind, refused.outcome)
            return refused.answer
        raw = self._raw_callback(scope, address, headers, kind, source, body)
        try:
            ingested = await self.ingest(raw)
        except StoreUnavailable as error:
            self._count(source.name, kind, "store_unavailable")
            return error_answer(
                503, "store_unavailable", str(error), [("Retry-After", RETRY_AFTER_SECONDS)]
            )
        if ingested.reason is not None and not ingested.duplicate:
            log.warning(
                "quarantined a %s callback from source %s as entry %s: %s",
                kind.name,
                source.name,
                ingested.quarantine_id,
                ingested.reason,
            )
        self._count(source.name, kind, "duplicate" if ingested.duplicate else ingested.status)
        self.metrics.observe_ingest(kind.name, time.perf_counter() - started)
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
        kind: HookKind,
        source: SourceConfig,
    ) -> None:
        if not source.allows(address):
            raise Refused(
                "forbidden",
                error_answer(403, "forbidden", f"address {address} may not call this source"),
            )
        if not verify_source_token(scope["query_string"], headers.authorization, source.token):
            raise Refused(
                "unauthorized",
                error_answer(
                    401,
                    "unauthorized",
                    "missing or wrong source token (use ?token=... or HTTP Basic)",
                    [("WWW-Authenticate", 'Basic realm="dlrhub"')],
                ),
            )
        if kind.content_type is not None:
            given_type = headers.content_type.split(";")[0].strip().lower()
            if given_type != kind.content_type:
                raise Refused(
                    "unsupported_media_type",
                    error_answer(
                        415,
                        "unsupported_media_type",
                        f"expected Content-Type {kind.content_type}, got {given_type or 'none'}",
                    ),
                )

    async def _read_body(self, receive: Receive, headers: _Headers) -> bytes:
        limit = self.config.server.max_body_bytes
        declared = headers.content_length
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
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

    def _raw_callback(
        self,
        scope: Scope,
        address: str | None,
        headers: _Headers,
        kind: HookKind,
        source: SourceConfig,
        body: bytes,
    ) -> RawCallback:
        return RawCallback(
            source=source.name,
            provider=source.provider,
            kind=kind.name,
            method=scope["method"],
            query=redact_query(scope["query_string"].decode("latin-1")),
            content_type=headers.content_type,
            body=redact_form(body) if kind.content_type == FORM else body,
            received_at=datetime.now(UTC),
            remote_addr=address,
        )

    def _count(self, source: str, kind: HookKind, outcome: str) -> None:
        self.metrics.count_callback(source, kind.name, outcome)
