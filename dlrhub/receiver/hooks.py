"""Provider callback routes: `/hooks/{source}/events|dlr|progress`.

Checks run cheapest first: unknown source 404, address not allowed 403, bad
token 401 (nothing stored), wrong content type 415, body over the limit 413.
Then the callback is normalized and committed; the 200 answer is sent only
after the commit. A payload that cannot be normalized is quarantined and still
answered 200: the provider would retry anything else, and a retry cannot fix it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.config import Config, SourceConfig
from dlrhub.normalizers import NORMALIZERS, NormalizeError, RawCallback
from dlrhub.receiver.auth import verify_source_token
from dlrhub.receiver.errors import error_response
from dlrhub.receiver.metrics import Metrics
from dlrhub.redact import redact_form, redact_query
from dlrhub.store import Accept, Quarantine, Store, StoreUnavailable, WriteItem

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
RETRY_AFTER_SECONDS = "5"


@dataclass(frozen=True, slots=True)
class HookKind:
    name: str
    method: str
    content_type: str | None  # None: no body expected (GET)


KINDS = (
    HookKind("events", "POST", FORM),
    HookKind("dlr", "GET", None),
    HookKind("progress", "POST", JSON),
)


class BodyTooLarge(Exception):
    pass


class Hooks:
    def __init__(self, config: Config, store: Store, metrics: Metrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics

    def routes(self) -> list[Route]:
        return [
            Route(
                f"/hooks/{{source}}/{kind.name}",
                self._endpoint(kind),
                methods=[kind.method],
                name=f"hook_{kind.name}",
            )
            for kind in KINDS
        ]

    def _endpoint(self, kind: HookKind) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.receive(request, kind)

        return endpoint

    async def receive(self, request: Request, kind: HookKind) -> Response:
        started = time.perf_counter()
        name = request.path_params["source"]
        source = self.config.source(name)
        if source is None:
            self._count("", kind, "unknown_source")
            return error_response(404, "unknown_source", f"no source named {name!r} is configured")
        rejection = await self._reject(request, kind, source)
        if rejection is not None:
            return rejection
        try:
            body = await self._read_body(request)
        except BodyTooLarge:
            self._count(source.name, kind, "too_large")
            limit = self.config.server.max_body_bytes
            return error_response(413, "payload_too_large", f"the body is over {limit} bytes")
        except ClientDisconnect:
            self._count(source.name, kind, "client_disconnected")
            return error_response(400, "client_disconnected", "the client went away mid-body")
        raw = self._raw_callback(request, kind, source, body)
        item: WriteItem
        try:
            item = Accept(raw, NORMALIZERS[source.provider](raw, source.options))
        except NormalizeError as error:
            item = Quarantine(raw, str(error))
        try:
            result = await self.store.write(item)
        except StoreUnavailable as error:
            self._count(source.name, kind, "store_unavailable")
            return error_response(
                503, "store_unavailable", str(error), {"Retry-After": RETRY_AFTER_SECONDS}
            )
        outcome = "quarantined" if isinstance(item, Quarantine) else result.outcome
        if isinstance(item, Quarantine) and result.outcome != "duplicate":
            log.warning(
                "quarantined a %s callback from source %s as entry %s: %s",
                kind.name,
                source.name,
                result.quarantine_id,
                item.reason,
            )
        self._count(source.name, kind, outcome if result.outcome != "duplicate" else "duplicate")
        self.metrics.ingest_seconds.labels(kind.name).observe(time.perf_counter() - started)
        answer: dict[str, object] = {
            "status": outcome,
            "duplicate": result.outcome == "duplicate",
            "event_ids": [event.id for event in result.events],
        }
        if result.quarantine_id is not None:
            answer["quarantine_id"] = result.quarantine_id
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _reject(
        self, request: Request, kind: HookKind, source: SourceConfig
    ) -> Response | None:
        address = request.client.host if request.client else None
        if not source.allows(address):
            self._count(source.name, kind, "forbidden")
            return error_response(403, "forbidden", f"address {address} may not call this source")
        if not verify_source_token(request, source.token):
            self._count(source.name, kind, "unauthorized")
            return error_response(
                401,
                "unauthorized",
                "missing or wrong source token (use ?token=... or HTTP Basic)",
                {"WWW-Authenticate": 'Basic realm="dlrhub"'},
            )
        if kind.content_type is not None:
            given = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if given != kind.content_type:
                self._count(source.name, kind, "unsupported_media_type")
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"expected Content-Type {kind.content_type}, got {given or 'none'}",
                )
        return None

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.server.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _raw_callback(
        self, request: Request, kind: HookKind, source: SourceConfig, body: bytes
    ) -> RawCallback:
        content_type = request.headers.get("content-type", "")
        return RawCallback(
            source=source.name,
            provider=source.provider,
            kind=kind.name,
            method=request.method,
            query=redact_query(request.scope["query_string"].decode("latin-1")),
            content_type=content_type,
            body=redact_form(body) if kind.content_type == FORM else body,
            received_at=datetime.now(UTC),
            remote_addr=request.client.host if request.client else None,
        )

    def _count(self, source: str, kind: HookKind, outcome: str) -> None:
        self.metrics.callbacks.labels(source, kind.name, outcome).inc()
