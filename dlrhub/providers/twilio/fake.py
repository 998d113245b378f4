"""A fake Twilio: it takes messages and calls their `StatusCallback` back, signed.

Speaks the part of Twilio's Messages API a sender uses
(twilio.com/docs/messaging/api/message-resource):
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (HTTP Basic
`AccountSid:AuthToken`; form `To`, `From` or `MessagingServiceSid`, `Body`,
`StatusCallback`) answers 201 with the Message resource, status `queued`
(`accepted` through a Messaging Service); `GET .../Messages/{Sid}.json` answers it
with its current status. Errors are Twilio's JSON (`code`, `message`, `more_info`,
`status`).

Each message then moves through `progression` (default `sent`, `delivered`), one
status every `step` seconds. At each step, when the message has a
`StatusCallback`, the fake POSTs the form Twilio would (`MessageSid`,
`MessageStatus`, `SmsSid`, `SmsStatus`, `To`, `From`, `AccountSid`,
`ApiVersion`, `MessagingServiceSid` when used, `ErrorCode` on `undelivered` and
`failed`, `RawDlrDoneDate` on `delivered` and `undelivered`) with
`X-Twilio-Signature`, computed here with `auth_token` over the callback URL and
the form, as Twilio does (twilio.com/docs/usage/webhooks/webhooks-security).
`autoplay=False` leaves the steps to `play(sid)`; `send_callback(url, form)` posts
one signed callback of a test's own. Every callback sent is in `callbacks`.

Named fault modes (`signature_fault`): `missing` sends no signature, `wrong_token`
signs with another token.

For a demo, against a running `dlrhub serve` with a `twilio` source:

    python -m dlrhub.providers.twilio.fake --auth-token TOKEN \\
        --status-callback http://127.0.0.1:8080/hooks/twilio/status
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import ClassVar, Literal
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of

API_VERSION = "2010-04-01"
FORM = "application/x-www-form-urlencoded"
SignatureFault = Literal["missing", "wrong_token"]
Form = Sequence[tuple[str, str]]


@dataclass
class FakeMessage:
    sid: str
    to: str
    sender: str
    body: str
    status: str
    status_callback: str | None
    messaging_service_sid: str | None
    created: datetime
    timeline: list[tuple[str, datetime]]
    played: int = 0


@dataclass(frozen=True, slots=True)
class SentCallback:
    url: str
    form: tuple[tuple[str, str], ...]
    signature: str | None
    status_code: int  # 0 when the request failed
    answer: bytes


def twilio_signature(auth_token: str, url: str, form: Form) -> str:
    """What Twilio puts in `X-Twilio-Signature`: the URL, then names and values sorted."""
    text = url + "".join(name + value for name, value in sorted(form))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def error(code: int, message: str, status: int) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


@dataclass
class FakeTwilio(FakeProvider):
    base_path: ClassVar[str] = f"/{API_VERSION}"
    account_sid: str = "AC" + "0123456789abcdef" * 2
    auth_token: str = "f1e2d3c4b5a69788796a5b4c3d2e1f00"  # noqa: S105 (the fake's demo credential)
    progression: tuple[str, ...] = ("sent", "delivered")
    step: float = 1.0
    autoplay: bool = True
    error_code: str = "30003"
    signature_fault: SignatureFault | None = None
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    callbacks: list[SentCallback] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def error_body(self, status: int) -> bytes:
        return b'{"code": 20500, "message": "Internal Server Error", "status": %d}' % status

    @property
    def app(self) -> Starlette:
        messages = f"{self.base_path}/Accounts/{{account}}/Messages"
        return Starlette(
            routes=[
                Route(f"{messages}.json", self.wrap(self.create), methods=["POST"]),
                Route(f"{messages}/{{sid}}.json", self.wrap(self.fetch), methods=["GET"]),
            ]
        )

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return (
            request.path_params["account"] == self.account_sid
            and request.headers.get("authorization", "") == f"Basic {expected}"
        )

    async def create(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(20003, "Authenticate", 401)
        form = await form_of(request)
        if not form.get("To"):
            return error(21604, "A 'To' phone number is required.", 400)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return error(21603, "A 'From' phone number is required.", 400)
        if not form.get("Body"):
            return error(21602, "Message body is required.", 400)
        message = self.create_message(
            form["To"],
            form.get("From", ""),
            form["Body"],
            status_callback=form.get("StatusCallback") or None,
            messaging_service_sid=form.get("MessagingServiceSid") or None,
        )
        return JSONResponse(self.resource(message), status_code=201)

    async def fetch(self, request: Request) -> Response:
        if not self._authorized(request):
            return error(20003, "Authenticate", 401)
        message = self.messages.get(request.path_params["sid"])
        if message is None:
            return error(20404, "The requested resource was not found", 404)
        return JSONResponse(self.resource(message))

    def create_message(
        self,
        to: str,
        sender: str,
        body: str,
        *,
        status_callback: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> FakeMessage:
        """A new message; with `autoplay`, its callbacks start on the running loop."""
        now = datetime.now(UTC).replace(microsecond=0)
        message = FakeMessage(
            sid=f"SM{next(self._ids):032x}",
            to=to,
            sender=sender,
            body=body,
            status="accepted" if messaging_service_sid else "queued",
            status_callback=status_callback,
            messaging_service_sid=messaging_service_sid,
            created=now,
            timeline=[
                (status, now + timedelta(seconds=self.step * (index + 1)))
                for index, status in enumerate(self.progression)
            ],
        )
        self.messages[message.sid] = message
        if self.autoplay:
            task = asyncio.get_running_loop().create_task(self._play_over_time(message.sid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return message

    def resource(self, message: FakeMessage) -> dict[str, object]:
        """The Message resource as Twilio's API answers it."""
        uri = f"{self.base_path}/Accounts/{self.account_sid}/Messages/{message.sid}.json"
        failed = message.status in {"undelivered", "failed"}
        return {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": format_datetime(message.created),
            "date_updated": format_datetime(message.created),
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": int(self.error_code) if failed else None,
            "error_message": None,
            "from": message.sender or None,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": message.status,
            "to": message.to,
            "uri": uri,
        }

    def status_form(self, message: FakeMessage, status: str, at: datetime) -> list[tuple[str, str]]:
        """The form of the status callback Twilio sends when `message` reaches `status`."""
        form = [("SmsSid", message.sid), ("SmsStatus", status), ("MessageStatus", status)]
        if status in {"undelivered", "failed"}:
            form.append(("ErrorCode", self.error_code))
        form.append(("To", message.to))
        if message.messaging_service_sid:
            form.append(("MessagingServiceSid", message.messaging_service_sid))
        form += [
            ("MessageSid", message.sid),
            ("AccountSid", self.account_sid),
            ("From", message.sender),
            ("ApiVersion", API_VERSION),
        ]
        if status in {"delivered", "undelivered"}:
            form.append(("RawDlrDoneDate", at.strftime("%y%m%d%H%M")))
        if message.to.startswith("whatsapp:"):
            form += [("ChannelPrefix", "whatsapp"), ("ChannelToAddress", message.to[9:])]
        return form

    async def play(self, sid: str) -> None:
        """Every status of the message not yet called back, now, in order."""
        while await self.play_next(sid):
            pass

    async def play_next(self, sid: str) -> bool:
        """The message's next status (and its callback); False when it has none left."""
        message = self.messages[sid]
        if message.played >= len(message.timeline):
            return False
        status, at = message.timeline[message.played]
        message.played += 1
        message.status = status
        if message.status_callback:
            await self.send_callback(message.status_callback, self.status_form(message, status, at))
        return True

    async def settle(self) -> None:
        """Wait for the callbacks `autoplay` started."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _play_over_time(self, sid: str) -> None:
        message = self.messages[sid]
        while message.played < len(message.timeline):
            await asyncio.sleep(self.step)
            await self.play_next(sid)

    async def send_callback(self, url: str, form: Form) -> SentCallback:
        """POST one status callback to `url`, signed as Twilio signs (or as the fault says)."""
        token = self.auth_token
        if self.signature_fault == "wrong_token":
            token = "wrong" + token
        signature = None
        if self.signature_fault != "missing":
            signature = twilio_signature(token, url, form)
        headers = {"Content-Type": FORM, "User-Agent": "TwilioProxy/1.1"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        try:
            async with httpx.AsyncClient(timeout=15.0) as client:
                answer = await client.post(url, content=urlencode(form), headers=headers)
            sent = SentCallback(url, tuple(form), signature, answer.status_code, answer.content)
        except httpx.HTTPError as exc:
            sent = SentCallback(url, tuple(form), signature, 0, str(exc).encode())
        self.callbacks.append(sent)
        return sent


async def _demo(args: argparse.Namespace) -> int:
    fake = FakeTwilio(
        auth_token=args.auth_token, progression=tuple(args.progression.split(",")), step=args.step
    )
    fake.create_message(args.to, args.sender, "dlrhub demo", status_callback=args.url)
    await fake.settle()
    for sent in fake.callbacks:
        print(f"{dict(sent.form)['MessageStatus']}: {sent.status_code} {sent.answer.decode()}")
    return 0 if all(200 <= sent.status_code < 300 for sent in fake.callbacks) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlrhub.providers.twilio.fake",
        description="Send one message's signed Twilio status callbacks to a StatusCallback URL.",
    )
    parser.add_argument("--status-callback", dest="url", required=True)
    parser.add_argument("--auth-token", required=True, help="the source's auth_token")
    parser.add_argument("--to", default="+14155550100")
    parser.add_argument("--from", dest="sender", default="+14155550199")
    parser.add_argument("--progression", default="sent,delivered", help="statuses, comma separated")
    parser.add_argument("--step", type=float, default=1.0, help="seconds between statuses")
    return asyncio.run(_demo(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
