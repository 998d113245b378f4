"""A fake UVox API (`/api/get-api/v1/sms-api` and the status query).

Speaks the wire format of providers/uvox-api.txt: every answer is JSON with a
three-digit `code`. Parameters are read from the query string or the form; the
key from `apikey` or the `Api-Key` header. The status path is `status_path`
(default `/api/get-api/v1/sms-status`: the document does not give it).

A message's n-th status query answers the n-th code of `progression` (default
`011` then `013`), then the last one forever. With `no_credit` set, sends answer
`009` and status queries `012` until it is cleared.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of

MESSAGES = {
    "001": "API Key Invalid or Not Available",
    "002": "Invalid format in the destination number",
    "003": "Invalid or empty text",
    "005": "Message sent successfully",
    "009": "No Plan or Balance in account (SMS queued)",
    "010": "Error validating SMS, please verify ID",
    "011": "To send",
    "012": "No plan available to send or Credit",
    "013": "SMS Sent",
    "016": "Missing variables in your request",
    "500": "Internal problem, please tray again",
}
BASE = "/api/get-api/v1"


def answer(code: str, **extra: object) -> JSONResponse:
    status = "success" if code in ("005", "011", "012", "013") else "error"
    if code == "009":
        status = "no_plan"
    return JSONResponse(
        {
            "version": "1",
            "code": code,
            "status": status,
            "resultstring": "Success" if status != "error" else "Failure",
            **extra,
            "statusmessage": MESSAGES.get(code, "Unknown"),
        }
    )


@dataclass
class FakeUvox(FakeProvider):
    base_path: ClassVar[str] = "/api/get-api/v1"
    accountnumber: str = "100200"
    apikey: str = "uvox-key-0123456789"
    status_path: str = f"{BASE}/sms-status"
    progression: tuple[str, ...] = ("011", "013")
    no_credit: bool = False
    queries: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(48))

    def account_settings(self) -> dict[str, str]:
        return {"accountnumber": self.accountnumber, "apikey": self.apikey}

    def error_body(self, status: int) -> bytes:
        return bytes(answer("500").body)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{BASE}/sms-api", self.wrap(self.send), methods=["GET", "POST"]),
                Route(self.status_path, self.wrap(self.status), methods=["GET", "POST"]),
            ]
        )

    def add_message(self) -> str:
        message_id = str(next(self._ids))
        self.queries[message_id] = 0
        return message_id

    async def _params(self, request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        if request.method == "POST":
            form = await form_of(request)
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        if "Api-Key" in request.headers:
            params.setdefault("apikey", request.headers["Api-Key"])
        return params

    def _refused(self, params: dict[str, str]) -> Response | None:
        if "accountnumber" not in params or "apikey" not in params:
            return answer("016")
        if params["accountnumber"] != self.accountnumber or params["apikey"] != self.apikey:
            return answer("001")
        return None

    async def send(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._refused(params)
        if refused is not None:
            return refused
        if not all(params.get(name) for name in ("from", "to")):
            return answer("016")
        if not params.get("text"):
            return answer("003")
        to = params["to"].lstrip("+")
        if not (to.isdigit() and 8 <= len(to) <= 15):
            return answer("002", to=params["to"])
        message_id = self.add_message()
        return answer("009" if self.no_credit else "005", to=f"+{to}", id=message_id)

    async def status(self, request: Request) -> Response:
        params = await self._params(request)
        refused = self._refused(params)
        if refused is not None:
            return refused
        message_id = params.get("messageId", "")
        if message_id not in self.queries:
            return answer("010")
        if self.no_credit:
            return answer("012")
        count = self.queries[message_id]
        self.queries[message_id] = count + 1
        return answer(self.progression[min(count, len(self.progression) - 1)])
