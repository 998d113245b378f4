"""A fake Onurix API (`/api/v1/send-sms`, `/api/v1/call/send`, `/api/v1/messages-state`).

Speaks the wire format of providers/onurix-api.txt. Each accepted message gets
a state progression (`progression`, or `scripts[phone]`) that advances with
time since the send, one state every `step_seconds` on `clock` (see
`dlrhub.testing.progress`), however often it is asked; every answer is kept in
the message's `answers`. Querying a send's dispatch id answers the group (a
list).

Errors are what the document shows and nothing else: HTTP 520 "Parametros
invalidos" with an `{error, msg}` body (schemas ErrorResponse*, onurix-api.txt
~l.2630-2700) for a bad client or key, an unknown id, a send missing its phone
or text, an unknown path or method; the `msg` says which. Other answers are
fault modes a test turns on: `refuse_credentials_with = 401` answers bad
credentials 401, and `dlrhub.testing.faults` has 401, 429, HTML 502 and
garbage for any request.
With `answer_unknown`, any id answers the first state (for benchmarks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of
from dlrhub.testing.progress import (
    DEFAULT_STEP_SECONDS,
    Answer,
    Clock,
    StepSeconds,
    Timeline,
    monotonic,
)

DEFAULT_PROGRESSION = ("Pendiente", "Enviado", "Entregado")
# The document lists no `msg` values: these say what was wrong in the words a reader would
# use, so that a client reading `msg` can tell credentials, ids and parameters apart.
BAD_CREDENTIALS = "Parametros invalidos: client o key incorrectos"
UNKNOWN_ID = "Parametros invalidos: el mensaje no existe"
MISSING_FIELDS = "Parametros invalidos: phone o sms vacio"


@dataclass
class FakeMessage:
    id: str
    dispatch_id: str
    phone: str
    text: str
    timeline: Timeline

    @property
    def answers(self) -> list[Answer]:
        return self.timeline.answers

    @property
    def queries(self) -> int:
        return self.timeline.queries


@dataclass
class FakeOnurix(FakeProvider):
    base_path: ClassVar[str] = "/api/v1"
    client: str = "1234"
    key: str = "onurix-key-0123456789"
    progression: tuple[str, ...] = DEFAULT_PROGRESSION
    scripts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    dispatches: dict[str, list[str]] = field(default_factory=dict)
    answer_unknown: bool = False  # answer any id as a message (benchmarks), not 520
    step_seconds: StepSeconds = DEFAULT_STEP_SECONDS
    clock: Clock = monotonic
    refuse_credentials_with: Literal[520, 401] = 520
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def account_settings(self) -> dict[str, str]:
        return {"client": self.client, "key": self.key}

    def error_body(self, status: int) -> bytes:
        return b'{"error": "520", "msg": "Error interno del sistema"}'

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/send-sms", self.wrap(self.send_sms), methods=["POST"]),
                Route("/api/v1/call/send", self.wrap(self.send_call), methods=["POST"]),
                Route("/api/v1/messages-state", self.wrap(self.messages_state), methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error},
        )

    async def _http_error(self, request: Request, error: Exception) -> Response:
        """An unknown path or method is answered as every other error: 520."""
        return refusal(f"Parametros invalidos: {request.method} {request.url.path}")

    def add_message(self, phone: str, text: str = "", dispatch_id: str = "") -> FakeMessage:
        """A message as if sent elsewhere (to be tracked, not sent, by dlrhub)."""
        number = next(self._ids)
        message = FakeMessage(
            id=f"msg-{number}",
            dispatch_id=dispatch_id or f"dsp-{number}",
            phone=phone,
            text=text,
            timeline=Timeline(self.scripts.get(phone, self.progression), started=self.clock()),
        )
        self.messages[message.id] = message
        self.dispatches.setdefault(message.dispatch_id, []).append(message.id)
        return message

    def _refused(self, client: str | None, key: str | None) -> Response | None:
        if client == self.client and key == self.key:
            return None
        if self.refuse_credentials_with == 401:
            return JSONResponse({"error": "401", "msg": "Credenciales invalidas"}, status_code=401)
        return refusal(BAD_CREDENTIALS)

    def unauthorized_body(self) -> bytes:
        return b'{"error": "401", "msg": "Credenciales invalidas"}'

    async def send_sms(self, request: Request) -> Response:
        return await self._send(request, text_field="sms", status_field="status")

    async def send_call(self, request: Request) -> Response:
        return await self._send(request, text_field="message", status_field="state")

    async def _send(self, request: Request, *, text_field: str, status_field: str) -> Response:
        form = await form_of(request)
        refused = self._refused(_text(form.get("client")), _text(form.get("key")))
        if refused is not None:
            return refused
        phones = [phone.strip() for phone in (_text(form.get("phone")) or "").split(",") if phone]
        text = _text(form.get(text_field)) or ""
        if not phones or (text_field == "sms" and not text):
            return refusal(MISSING_FIELDS)
        dispatch_id = f"dsp-{next(self._ids)}"
        data: list[dict[str, object]] = []
        for phone in phones:
            if not (phone.isdigit() and 10 <= len(phone) <= 15):
                data.append({"id": None, status_field: "Rechazado", "credits": 0, "phone": phone})
                continue
            message = self.add_message(phone, text, dispatch_id)
            item = {"id": message.id, status_field: "Pendiente", "credits": 1, "phone": phone}
            item["sms" if text_field == "sms" else "message"] = text
            data.append(item)
        return JSONResponse({"id": dispatch_id, "status": 1, "data": data})

    async def messages_state(self, request: Request) -> Response:
        params = request.query_params
        refused = self._refused(params.get("client"), params.get("key"))
        if refused is not None:
            return refused
        wanted = params.get("id", "")
        if wanted in self.dispatches:
            return JSONResponse([self._answer(self.messages[i]) for i in self.dispatches[wanted]])
        if wanted in self.messages:
            return JSONResponse(self._answer(self.messages[wanted]))
        if self.answer_unknown and wanted:
            timeline = Timeline(self.progression, started=self.clock())
            message = FakeMessage(wanted, "dsp-0", "573150000000", "", timeline)
            return JSONResponse(self._answer(message))
        return refusal(UNKNOWN_ID)

    def _answer(self, message: FakeMessage) -> dict[str, object]:
        state = message.timeline.answer(self.clock(), self.step_seconds)
        return {
            "state": state,
            "credits": 1,
            "phone": int(message.phone),
            "created": "2025-03-01 12:00:00",
            "sms": message.text,
            "dispatch_id": message.dispatch_id,
            "id": message.id,
        }


def refusal(msg: str) -> Response:
    """The one error the document shows: 520 "Parametros invalidos" with `{error, msg}`."""
    return JSONResponse({"error": "520", "msg": msg}, status_code=520)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
