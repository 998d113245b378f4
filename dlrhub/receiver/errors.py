"""Every error answer is JSON `{"error": <code>, "detail": <sentence>}`, never a trace.

A detail says what the caller can act on, never how dlrhub is built: no file
path, DSN, host name or exception text. Where the cause is ours (the store, the
ingest worker, a provider we could not reach) the answer is a fixed sentence
and the cause goes to the log, where the operator reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dlrhub.store import StoreUnavailable

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "store_unavailable",
}


INTERNAL_ERROR_DETAIL = "dlrhub hit an unexpected error; it is logged"
STORE_UNAVAILABLE_DETAIL = "the store cannot be used right now; retry later (the cause is logged)"
RETRY_AFTER_SECONDS = "5"


def error_body(code: str, detail: str) -> bytes:
    return orjson.dumps({"error": code, "detail": detail})


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(code, detail), status, headers, media_type="application/json")


class ReceiverBusy(StoreUnavailable):
    """The receiver cannot take a callback now (its ingest worker or commit is behind).

    Its text is a fixed sentence of ours with no internal detail, so unlike any other
    store error it is fit for an answer: it tells the operator which fault it is.
    """


def unavailable_detail(error: Exception) -> str:
    """What a 503 may say of `error`: a `ReceiverBusy` sentence, else the fixed one."""
    return str(error) if isinstance(error, ReceiverBusy) else STORE_UNAVAILABLE_DETAIL


def store_unavailable(method: str, path: str, error: Exception) -> Response:
    """The 503 answer to a request the store could not serve; the cause goes to the log."""
    log_store_unavailable(method, path, error)
    return error_response(
        503, "store_unavailable", unavailable_detail(error), {"Retry-After": RETRY_AFTER_SECONDS}
    )


def log_store_unavailable(method: str, path: str, error: Exception) -> None:
    # The store's text names its file or its DSN and host: fine for the log, not an answer.
    # Not rate-limited: callbacks, the flood when a store is lost, are (`Hooks`); an
    # operator's API calls and probes are few.
    log.warning("%s %s answered 503, store unavailable: %s", method, path, error)


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def unexpected_exception(request: Request, exc: Exception) -> Response:
    # One line, no trace: Starlette re-raises the error after this answer, and the
    # server logs the trace ("Exception in ASGI application"). `log.exception` here
    # would log it twice. (`/hooks/` answers its own 500s: see `Hooks.__call__`.)
    log.error("unexpected error on %s %s: %r", request.method, request.url.path, exc)
    return error_response(500, "internal_error", INTERNAL_ERROR_DETAIL)


EXCEPTION_HANDLERS = {HTTPException: http_exception, Exception: unexpected_exception}


Endpoint = Callable[[Request], Awaitable[Response]]


def answering(
    endpoint: Endpoint,
    *,
    bad: tuple[type[Exception], ...] = (),
    missing: tuple[type[Exception], ...] = (),
    unavailable: tuple[type[Exception], ...] = (),
) -> Endpoint:
    """`endpoint`, with the errors it expects answered as JSON: `bad` a 400 with its
    reason, `missing` a 404, the store's (and `unavailable`) a 503; never a 500."""

    gone: tuple[type[Exception], ...] = (StoreUnavailable, *unavailable)

    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except bad as error:
            return error_response(400, "bad_request", str(error))
        except missing as error:
            return error_response(404, "not_found", str(error))
        except gone as error:
            return store_unavailable(request.method, request.url.path, error)

    return answered
