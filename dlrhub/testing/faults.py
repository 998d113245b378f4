"""What every fake provider shares: a request log and scripted faults.

By default a fake answers only what its provider's document shows (Onurix: 520
with `{error, msg}`; UVox: its three-digit codes). Everything else is a named
fault mode a test turns on with `fake.inject(Fault(kind, ...))`; it applies to
the next `times` requests whose path starts with `path` (any path when empty):

| kind           | effect                                                                |
|----------------|-----------------------------------------------------------------------|
| `delay`        | waits `seconds`, then answers normally                                |
| `status`       | answers HTTP `status` with `body` (default: the provider's error)    |
| `unauthorized` | answers HTTP 401 with the provider's refusal (`body` to override)     |
| `rate_limited` | answers HTTP 429 with `Retry-After: seconds` (1 when 0)               |
| `html_502`     | answers HTTP 502 with an HTML page, as a proxy in front of it would   |
| `garbage`      | answers HTTP 200 with a body that is not JSON (`malformed`: the same) |
| `expire_token` | (Conectaline) every temporary token issued so far stops working       |
| `throttle`     | answers 429 with `Retry-After: seconds` to each request beyond        |
|                | `per_second` in the last second (the 429s count as requests too);     |
|                | `times` is how many 429s it answers before it stops                   |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

FaultKind = Literal[
    "delay",
    "status",
    "unauthorized",
    "rate_limited",
    "html_502",
    "garbage",
    "malformed",
    "expire_token",
    "throttle",
]
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
GARBAGE = b'{"data": [{"id": '
ALWAYS = 1_000_000  # `times` for a fault that lasts the whole test
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Fault:
    kind: FaultKind
    path: str = ""
    times: int = 1
    seconds: float = 0.0
    status: int = 500
    body: bytes | None = None
    per_second: int = 0  # `throttle`: requests a second it lets through


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeProvider:
    """Base of the fakes: `latency` on every answer, faults, and the request log.

    `base_path` is where the provider's API lives under the fake's address, and
    `account_settings()` the `[[accounts]]` keys that the fake accepts.
    """

    base_path: ClassVar[str] = ""
    latency: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        """The fake's ASGI app, to serve with Uvicorn."""
        raise NotImplementedError

    def account_settings(self) -> dict[str, str]:
        return {}

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.startswith(path)]

    def max_requests_per_second(self, path: str = "", window: float = 1.0) -> int:
        """The most requests to `path` that arrived within any `window` seconds."""
        times = sorted(request.at for request in self.requests_to(path))
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def error_body(self, status: int) -> bytes:
        """The provider's error answer for an injected HTTP status."""
        return b'{"error": "internal", "msg": "fault injected"}'

    def unauthorized_body(self) -> bytes:
        """The provider's answer to refused credentials, for the `unauthorized` fault."""
        return b'{"error": "unauthorized", "msg": "fault injected"}'

    def on_expire_token(self) -> None:
        """Conectaline overrides: revoke the tokens."""

    def wrap(self, endpoint: Endpoint) -> Endpoint:
        """Record the request, apply faults and latency, then call `endpoint`."""

        async def wrapped(request: Request) -> Response:
            body = await request.body()
            self.requests.append(
                RecordedRequest(
                    at=time.monotonic(),
                    method=request.method,
                    path=request.url.path,
                    query=request.url.query,
                    headers=dict(request.headers),
                    body=body,
                )
            )
            if self.latency:
                await asyncio.sleep(self.latency)
            for fault in list(self.faults):
                if fault.times <= 0 or not request.url.path.startswith(fault.path):
                    continue
                if fault.kind == "throttle" and not self._over(fault):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.kind == "delay":
                    await asyncio.sleep(fault.seconds)
                elif fault.kind == "status":
                    return Response(
                        fault.body if fault.body is not None else self.error_body(fault.status),
                        status_code=fault.status,
                        media_type="application/json",
                    )
                elif fault.kind == "unauthorized":
                    body = fault.body if fault.body is not None else self.unauthorized_body()
                    return Response(body, status_code=401, media_type="application/json")
                elif fault.kind == "rate_limited":
                    return Response(
                        fault.body if fault.body is not None else self.error_body(429),
                        status_code=429,
                        headers={"Retry-After": str(max(1, round(fault.seconds)))},
                        media_type="application/json",
                    )
                elif fault.kind == "html_502":
                    return Response(HTML_502, status_code=502, media_type="text/html")
                elif fault.kind in ("garbage", "malformed"):
                    return Response(GARBAGE, media_type="application/json")
                elif fault.kind == "expire_token":
                    self.on_expire_token()
                elif fault.kind == "throttle":
                    return Response(
                        b'{"error": "429", "msg": "Too many requests"}',
                        status_code=429,
                        headers={"Retry-After": f"{fault.seconds:g}"},
                        media_type="application/json",
                    )
                break
            return await endpoint(request)

        return wrapped

    def _over(self, fault: Fault) -> bool:
        """Whether the request just recorded is beyond `fault.per_second` in the last second."""
        latest = self.requests[-1]
        recent = [r for r in self.requests_to(fault.path) if latest.at - r.at < 1.0]
        return len(recent) > fault.per_second


async def form_of(request: Request) -> dict[str, str]:
    """A form-encoded body (first value of each field), without python-multipart."""
    body = (await request.body()).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
