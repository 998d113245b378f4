"""One line per HTTP request, and the request id in and out: an ASGI middleware.

It wraps the whole app (`dlrhub.app.DlrhubApp`), provider callbacks included, so
every answer carries `X-Request-Id` (dlrhub/receiver/request_id.py) and, with
`server.access_log = true` (the default), gives one line on the `dlrhub.access`
logger at INFO once the answer is sent. Uvicorn's own access log is off, so a
request gives one line, not two.

| field         | what                                                          |
|---------------|---------------------------------------------------------------|
| `method`      | the request's method                                          |
| `path`        | path and query, each secret-named parameter's value `[REDACTED]` |
|               | (dlrhub/redact.py); cut at 2,000 characters                   |
| `status`      | the answer's status; 0 if none was sent (the client left)     |
| `bytes`       | the answer body's size                                        |
| `duration_ms` | from the request's arrival to the end of the answer           |
| `remote_addr` | the client's address (the proxy's, unless `forwarded_allow_ips`) |
| `request_id`  | the request id, as echoed                                     |
| `source`      | for a callback to a configured source, its name               |

Answers Uvicorn gives itself (503 above `limit_concurrency`, 400 for what is not
HTTP) never reach the app, so they have no line here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dlrhub.receiver.request_id import HEADER, SCOPE_KEY, request_id_of
from dlrhub.redact import redact_query

log = logging.getLogger("dlrhub.access")

SOURCE_KEY = "dlrhub.source"  # set in the scope by the hooks once the source is known
MAX_PATH_LENGTH = 2000


class RequestLog:
    """Gives each request its id, echoes it, and logs the access line when switched on."""

    def __init__(self, app: ASGIApp, *, access_log: bool, secrets: Collection[str]) -> None:
        self.app = app
        self.access_log = access_log
        self.secrets = tuple(secret for secret in secrets if secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"], self.secrets)
        scope[SCOPE_KEY] = request_id
        header = (HEADER, request_id.encode("ascii"))
        status = 0
        size = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and log.isEnabledFor(logging.INFO):
                log_access(scope, request_id, status, size, time.perf_counter() - started)


def log_access(scope: Scope, request_id: str, status: int, size: int, seconds: float) -> None:
    path = scope["path"]
    query = scope.get("query_string", b"")
    if query:
        path = f"{path}?{redact_query(query.decode('latin-1'))}"
    if not path.isprintable():  # a decoded `%0A` must not start a line of its own
        path = path.encode("unicode_escape").decode("ascii")
    if len(path) > MAX_PATH_LENGTH:
        path = path[:MAX_PATH_LENGTH] + "..."
    client = scope.get("client")
    address = client[0] if client else "-"
    duration_ms = round(seconds * 1000, 3)
    fields: dict[str, Any] = {
        "method": scope["method"],
        "path": path,
        "status": status,
        "bytes": size,
        "duration_ms": duration_ms,
        "remote_addr": address,
        "request_id": request_id,
    }
    source = scope.get(SOURCE_KEY)
    if source is not None:
        fields["source"] = source
    log.info(
        '%s "%s %s" %d %d B %.1f ms request_id=%s%s',
        address,
        scope["method"],
        path,
        status,
        size,
        duration_ms,
        request_id,
        f" source={source}" if source is not None else "",
        extra=fields,
    )
