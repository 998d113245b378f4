"""A fake UVox API (`/api/get-api/v1/sms-api` and the status query).

Speaks the wire format of providers/uvox-api.txt: every answer is JSON with a
three-digit `code`. Parameters are read from the query string or the form; the
key from `apikey` or the `Api-Key` header. The status path is `status_path`
(default `/api/get-api/v1/sms-status`: the document does not give it).

A message's status advances with time since the send through `progression`
(default `011` "To send", then `013` "SMS Sent"), one code every
`step_seconds` on `clock` (see `dlrhub.testing.progress`), however often it
is asked; every answer is kept in `messages[id].answers`. With `no_credit` set,
sends answer `009` and status queries `012`; the messages not yet sent wait,
and their progression starts when it is cleared.

Every answer is HTTP 200 with a code the document shows (001/002/003/004/005/
009/016/500 in general and for sends, 010-013 for status queries, 017 for an
unknown path). Other answers (401, 429, HTML 502, garbage) are fault modes of
`dlrhub.testing.faults` a test turns on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of
from dlrhub.testing.progress import DEFAULT_STEP_SECONDS, Clock, StepSeconds, Timeline, monotonic

MESSAGES = {
    "001": "API Key Invalid or Not Available",
    "002": "Invalid format in the destination number",
    "003": "Invalid or empty text",
    "004": "405, Method Not Allowed",
    "005": "Message sent successfully",
    "009": "No Plan or Balance in account (SMS queued)",
    "010": "Error validating SMS, please verify ID",
    "011": "To send",
    "012": "No plan available to send or Credit",
    "013": "SMS Sent",
    "016": "Missing variables in your request",
    "017": "404, HTTP 404 Not Found",
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
    step_seconds: StepSeconds = DEFAULT_STEP_SECONDS
    clock: Clock = monotonic
    messages: dict[str, Timeline] = field(default_factory=dict)
    _no_credit: bool = False
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(48))

    @property
    def no_credit(self) -> bool:
        return self._no_credit

    @no_credit.setter
    def no_credit(self, value: bool) -> None:
        """Without credit nothing is sent: progressions wait, and start again once it is back."""
        now = self.clock()
        for timeline in self.messages.values():
            if value and not timeline.is_final(now, self.step_seconds):
                timeline.started = None
            elif not value and timeline.started is None:
                timeline.started = now
        self._no_credit = value

    def account_settings(self) -> dict[str, str]:
        return {"accountnumber": self.accountnumber, "apikey": self.apikey}

    def error_body(self, status: int) -> bytes:
        return bytes(answer("500").body)

    def unauthorized_body(self) -> bytes:
        return bytes(answer("001").body)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{BASE}/sms-api", self.wrap(self.send), methods=["GET", "POST"]),
                Route(self.status_path, self.wrap(self.status), methods=["GET", "POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},
        )

    async def _http_error(self, request: Request, error: Exception) -> Response:
        """Starlette's own 404 and 405 answered as the document's codes 017 and 004."""
        status = error.status_code if isinstance(error, HTTPException) else 500
        return answer({404: "017", 405: "004"}.get(status, "500"))

    def add_message(self) -> str:
        message_id = str(next(self._ids))
        started = None if self._no_credit else self.clock()
        self.messages[message_id] = Timeline(self.progression, started=started)
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
        timeline = self.messages.get(params.get("messageId", ""))
        if timeline is None:
            return answer("010")
        now = self.clock()
        if self._no_credit and not timeline.is_final(now, self.step_seconds):
            return answer(timeline.answer(now, self.step_seconds, state="012"))
        return answer(timeline.answer(now, self.step_seconds))
