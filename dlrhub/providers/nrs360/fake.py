"""A fake 360NRS API: send SMS, per-message info, events report; and its callbacks.

Speaks the wire format of providers/360nrs-api.txt: HTTP Basic on every
request; `POST /api/rest/sms` answers 202 when every recipient is valid, 207
per recipient when some are not (error 102), 400 when none is. Each accepted
message gets a timeline of events (`progression`, one every `step` seconds
after the send); `GET /api/rest/sms/<ids>` shows the events that have happened
by `clock()` (time, not the number of queries, moves a message on), and
`GET /api/rest/sendings/<id>/reports/events` lists every event of the sending
as CSV, filtered by `afterDate` / `beforeDate`.

`notify(message_id)` plays 360NRS calling back: it POSTs the message's event
notifications to `events_url` (form, as ~l.7982 describes), and GETs its
`notificationUrl` with the Kannel escapes replaced.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider

KANNEL = {"sent": "8", "delivered": "1", "undelivered": "2", "rejected": "16", "expired": "34"}
REPORT_COLUMNS = [
    "campaignName",
    "campaignId",
    "sendingId",
    "contactId",
    "event",
    "phone",
    "email",
    "landline",
    "countryIso",
    "browser",
    "os",
    "url",
    "createdAt",
]


@dataclass
class FakeEvent:
    type: str
    date: datetime


@dataclass
class FakeSms:
    id: str
    to: str
    sender: str
    text: str
    campaign_id: int
    sending_id: int
    contact_id: int
    notification_url: str | None
    timeline: list[FakeEvent]


def utc_now() -> datetime:
    return datetime.now(UTC)


def error(code: int, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "description": description}}, status_code=status)


@dataclass
class FakeNrs360(FakeProvider):
    base_path: ClassVar[str] = "/api/rest"
    username: str = "dlrhub"
    password: str = "nrs360-api-pass-0123"  # noqa: S105 (the fake's demo credential)
    progression: tuple[str, ...] = ("sent", "delivered")
    step: float = 5.0
    clock: Callable[[], datetime] = utc_now
    events_url: str | None = None
    messages: dict[str, FakeSms] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100001))

    def account_settings(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def error_body(self, status: int) -> bytes:
        return b'{"error": {"code": 101, "description": "Internal Database error"}}'

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/rest/sms", self.wrap(self.send), methods=["POST"]),
                Route("/api/rest/sms/{ids}", self.wrap(self.info), methods=["GET"]),
                Route(
                    "/api/rest/sendings/{sending_id}/reports/events",
                    self.wrap(self.report),
                    methods=["GET"],
                ),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("authorization", "") == f"Basic {expected}"

    async def send(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(103, "Username or password unknown", 401)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(125, "Invalid JSON", 400)
        if not isinstance(body, dict) or not body.get("message"):
            return error(104, "Text message missing", 400)
        recipients = body.get("to")
        if not isinstance(recipients, list):
            return error(102, "No valid recipients", 400)
        urls = body.get("notificationUrl")
        campaign_id, sending_id = next(self._ids), next(self._ids)
        now = self.clock().replace(microsecond=0)
        results: list[dict[str, object]] = []
        for index, to in enumerate(recipients):
            to = str(to)
            if not (to.isdigit() and len(to) >= 9):
                results.append(
                    {
                        "accepted": False,
                        "to": to,
                        "error": {"code": 102, "description": "No valid recipients"},
                    }
                )
                continue
            url = urls[index] if isinstance(urls, list) and index < len(urls) else urls
            sms = FakeSms(
                id=secrets.token_hex(7)[:13].upper(),
                to=to,
                sender=str(body.get("from", "")),
                text=str(body["message"]),
                campaign_id=campaign_id,
                sending_id=sending_id,
                contact_id=next(self._ids),
                notification_url=url if isinstance(url, str) else None,
                timeline=[
                    FakeEvent(kind, now + timedelta(seconds=self.step * (position + 1)))
                    for position, kind in enumerate(self.progression)
                ],
            )
            self.messages[sms.id] = sms
            results.append(
                {
                    "accepted": True,
                    "to": to,
                    "id": sms.id,
                    "parts": 1,
                    "scheduledAt": None,
                    "expiresAt": None,
                }
            )
        accepted = sum(1 for result in results if result["accepted"])
        if accepted == 0:
            return error(102, "No valid recipients", 400)
        answer = {"campaignId": campaign_id, "sendingId": sending_id, "result": results}
        return JSONResponse(answer, status_code=202 if accepted == len(results) else 207)

    async def info(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(103, "Username or password unknown", 401)
        found = [
            self.messages[i] for i in request.path_params["ids"].split(",") if i in self.messages
        ]
        if not found:
            return error(404, "Resource not found", 404)
        data = []
        now = self.clock()
        for sms in found:
            events = [
                {
                    "type": event.type,
                    "date": event.date.isoformat(),
                    "isMobile": False,
                    "browser": "",
                    "os": "",
                }
                for event in sms.timeline
                if event.date <= now
            ]
            data.append(
                {
                    "id": sms.id,
                    "from": sms.sender,
                    "to": sms.to,
                    "message": sms.text,
                    "campaignId": sms.campaign_id,
                    "sendingId": sms.sending_id,
                    "isDelivered": any(event["type"] == "delivered" for event in events),
                    "isClicked": False,
                    "events": events,
                }
            )
        return JSONResponse({"data": data})

    async def report(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(103, "Username or password unknown", 401)
        sending_id = request.path_params["sending_id"]
        after = _date(request.query_params.get("afterDate"))
        before = _date(request.query_params.get("beforeDate"))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        for sms in self.messages.values():
            if str(sms.sending_id) != sending_id:
                continue
            for event in sms.timeline:
                if (after and event.date < after) or (before and event.date >= before):
                    continue
                writer.writerow(
                    [
                        "Campaña API",
                        sms.campaign_id,
                        sms.sending_id,
                        sms.contact_id,
                        event.type,
                        sms.to,
                        "",
                        "",
                        "ES",
                        "",
                        "",
                        "",
                        event.date.strftime("%Y-%m-%d %H:%M:%S"),
                    ]
                )
        return Response(out.getvalue(), media_type="text/csv")

    async def notify(
        self, message_id: str, *, events: tuple[str, ...] | None = None, dlr: bool = True
    ) -> None:
        """Call dlrhub back for a message: event notifications, then its delivery receipt."""
        sms = self.messages[message_id]
        async with httpx.AsyncClient() as client:
            for event in sms.timeline:
                if events is not None and event.type not in events:
                    continue
                if self.events_url:
                    form = {
                        "id": sms.id,
                        "channel": "sms",
                        "contactId": str(sms.contact_id),
                        "campaignId": str(sms.campaign_id),
                        "campaignName": "Campaña API",
                        "event": event.type,
                        "eventDate": event.date.strftime("%Y-%m-%d %H:%M:%S"),
                    }
                    await client.post(self.events_url, data=form)
            last = sms.timeline[-1]
            if dlr and sms.notification_url and last.type in KANNEL:
                url = (
                    sms.notification_url.replace("%d", KANNEL[last.type])
                    .replace("%P", sms.to)
                    .replace("%p", sms.sender)
                )
                await client.get(url)


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
