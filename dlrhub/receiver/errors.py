"""Every error answer is JSON `{"error": <code>, "detail": <sentence>}`, never a trace."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

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


def error_body(code: str, detail: str) -> bytes:
    return orjson.dumps({"error": code, "detail": detail})


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(code, detail), status, headers, media_type="application/json")


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
