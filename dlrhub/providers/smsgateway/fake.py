"""A fake SMS gateway: a small Kannel or Jasmin that calls a dlr-url back.

Its send endpoints, reduced to what a demo needs:

- Kannel: `GET /cgi-bin/sendsms?username&password&from&to&text&dlr-mask&dlr-url`,
  answered 202 `0: Accepted for delivery`;
- Jasmin: `GET` or `POST /send` with `username, password, from, to, content,
  dlr=yes, dlr-url, dlr-level, dlr-method`, answered 200 `Success "<id>"`.

`submit(...)` does the same without HTTP. `report(message_id, stat)` then plays
the gateway calling back, as the real ones do:

- Kannel (gw/urltrans.c, gw/dlr.c): for each report its `dlr-mask` asks for, 8
  (`%A` = `ACK/`) and then 1, 2 or 4 (`DELIVRD` is 1; `ACCEPTD`, `ENROUTE` 4;
  any other `stat` 2, as gw/smsc/smsc_smpp.c folds it; `%A` = the SMPP receipt),
  GET on the dlr-url with the escapes filled in and URL-encoded as Kannel does (a
  space is `+`). With `post=True` it POSTs the same parameters as a form instead,
  `token` left in the URL. It retries unless the answer is 200 or 202 (smsbox's
  `http-request-retry`); the body is ignored. `refuse(message_id)` plays a 16
  (`NACK/0x0000000b/...`).
- Jasmin (jasmin/routing/throwers.py): level 1 (`message_status=ESME_ROK`, or the
  error `refuse` names) when `dlr-level` is 1 or 3, level 2 with the receipt's
  fields when 2 or 3; GET appends the fields to the dlr-url's query, POST sends
  them as a form. It retries until the answer's body, stripped, is `ACK/Jasmin`
  (a 404 stops it at once), at most `max_retries` times, `retry_delay` apart.

Every call it makes, retries included, is in `attempts`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dlrhub.testing.faults import FakeProvider, form_of

Flavour = Literal["kannel", "jasmin"]
Method = Literal["GET", "POST"]

JASMIN_ACK = "ACK/Jasmin"
KANNEL_SAFE = "-_.!~*'()"  # gwlib/octstr.c urlcode_init: left as they are, a space becomes '+'

# The bit of a Kannel report (gw/dlr.h).
DLR_SUCCESS, DLR_FAIL, DLR_BUFFERED, DLR_SMSC_SUCCESS, DLR_SMSC_FAIL = 1, 2, 4, 8, 16
# How Kannel folds an SMPP receipt's `stat` into a report bit (gw/smsc/smsc_smpp.c).
BUFFERED_STATS = frozenset({"ACCEPTD", "ACKED", "BUFFRED", "BUFFERD", "ENROUTE"})


@dataclass
class FakeMessage:
    id: str  # what the send answered: Jasmin's message id, Kannel's internal id
    flavour: Flavour
    to: str
    sender: str
    text: str
    dlr_url: str | None
    dlr_mask: int  # Kannel: the report bits asked for
    dlr_level: int  # Jasmin: 1, 2 or 3
    method: Method
    smsc_message_id: str
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class DlrAttempt:
    message_id: str
    method: str
    url: str
    body: bytes
    status: int | None  # None: the connection failed
    answer: str


@dataclass
class FakeSmsGateway(FakeProvider):
    base_path: ClassVar[str] = ""
    username: str = "dlrhub"
    password: str = "gateway-pass-0123"  # noqa: S105 (the fake's demo credential)
    smsc: str = "fake-smsc"  # Kannel's smsc-id (%i), Jasmin's connector
    max_retries: int = 3
    retry_delay: float = 0.05
    messages: dict[str, FakeMessage] = field(default_factory=dict)
    attempts: list[DlrAttempt] = field(default_factory=list)
    _smsc_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7300001))

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/cgi-bin/sendsms", self.wrap(self.kannel_send), methods=["GET"]),
                Route("/send", self.wrap(self.jasmin_send), methods=["GET", "POST"]),
            ]
        )

    # ---- sending -------------------------------------------------------------------

    def submit(
        self,
        flavour: Flavour,
        *,
        to: str,
        sender: str = "DLRHUB",
        text: str = "Hola",
        dlr_url: str | None = None,
        dlr_mask: int = DLR_SUCCESS | DLR_FAIL | DLR_SMSC_SUCCESS | DLR_SMSC_FAIL,
        dlr_level: int = 3,
        method: Method = "GET",
        submitted_at: datetime | None = None,
    ) -> str:
        """Accept a message as the gateway's send endpoint would; returns its id."""
        message = FakeMessage(
            id=str(uuid.uuid4()),
            flavour=flavour,
            to=to,
            sender=sender,
            text=text,
            dlr_url=dlr_url,
            dlr_mask=dlr_mask,
            dlr_level=dlr_level,
            method=method,
            smsc_message_id=f"{next(self._smsc_ids):x}",
            submitted_at=(submitted_at or datetime.now(UTC)).replace(microsecond=0),
        )
        self.messages[message.id] = message
        return message.id

    async def kannel_send(self, request: Request) -> Response:
        query = request.query_params
        if (query.get("username"), query.get("password")) != (self.username, self.password):
            return PlainTextResponse("Authorization failed for sendsms", status_code=403)
        if not query.get("to"):
            return PlainTextResponse("Missing receiver number", status_code=400)
        self.submit(
            "kannel",
            to=query["to"],
            sender=query.get("from", "DLRHUB"),
            text=query.get("text", ""),
            dlr_url=query.get("dlr-url"),
            dlr_mask=int(query.get("dlr-mask", "0") or 0),
        )
        return PlainTextResponse("0: Accepted for delivery", status_code=202)

    async def jasmin_send(self, request: Request) -> Response:
        fields = dict(request.query_params)
        if request.method == "POST":
            fields.update(await form_of(request))
        if (fields.get("username"), fields.get("password")) != (self.username, self.password):
            return PlainTextResponse('Error "Authentication failure"', status_code=403)
        if not fields.get("to") or "content" not in fields:
            return PlainTextResponse('Error "Mandatory arguments not found"', status_code=400)
        wants_dlr = fields.get("dlr", "no") == "yes"
        method = fields.get("dlr-method", "POST").upper()
        message_id = self.submit(
            "jasmin",
            to=fields["to"],
            sender=fields.get("from", "DLRHUB"),
            text=fields["content"],
            dlr_url=fields.get("dlr-url") if wants_dlr else None,
            dlr_level=int(fields.get("dlr-level", "1")),
            method="GET" if method == "GET" else "POST",
        )
        return PlainTextResponse(f'Success "{message_id}"')

    # ---- calling back --------------------------------------------------------------

    async def report(
        self,
        message_id: str,
        stat: str = "DELIVRD",
        *,
        err: str = "000",
        done_at: datetime | None = None,
        post: bool = False,
    ) -> bool:
        """Call the message's dlr-url: the SMSC's ack, then its receipt saying `stat`.

        True when every call was acknowledged (after retries), as the gateway sees it.
        """
        message = self.messages[message_id]
        done = (done_at or datetime.now(UTC)).replace(microsecond=0)
        receipt = {
            "id": message.smsc_message_id,
            "sub": "001",
            "dlvrd": "001" if stat == "DELIVRD" else "000",
            "submit date": message.submitted_at.strftime("%y%m%d%H%M"),
            "done date": done.strftime("%y%m%d%H%M"),
            "stat": stat,
            "err": err,
            "text": message.text[:20],
        }
        if message.flavour == "jasmin":
            acked = await self._jasmin(message, 1, {"message_status": "ESME_ROK"})
            level_2 = {
                "message_status": stat,
                "connector": message.smsc_message_id,
                "id_smsc": receipt["id"],
                "sub": receipt["sub"],
                "dlvrd": receipt["dlvrd"],
                "subdate": receipt["submit date"],
                "donedate": receipt["done date"],
                "err": err,
                "text": receipt["text"],
            }
            return await self._jasmin(message, 2, level_2) and acked
        text = " ".join(f"{name}:{value}" for name, value in receipt.items())
        final = DLR_SUCCESS if stat == "DELIVRD" else DLR_FAIL
        if stat in BUFFERED_STATS:
            final = DLR_BUFFERED
        acked = await self._kannel(message, DLR_SMSC_SUCCESS, "ACK/", done, post=post)
        return await self._kannel(message, final, text, done, post=post) and acked

    async def refuse(
        self,
        message_id: str,
        error: str = "ESME_RINVDSTADR",
        *,
        code: int = 0x0B,
        post: bool = False,
    ) -> bool:
        """The SMSC refuses the send: Kannel's 16 (`NACK/...`), Jasmin's level 1 error."""
        message = self.messages[message_id]
        if message.flavour == "jasmin":
            return await self._jasmin(message, 1, {"message_status": error})
        message.smsc_message_id = ""  # no submit_sm_resp id: Kannel leaves %F empty
        reply = f"NACK/0x{code:08x}/Invalid Destination Address"
        return await self._kannel(message, DLR_SMSC_FAIL, reply, datetime.now(UTC), post=post)

    async def _kannel(
        self, message: FakeMessage, bit: int, reply: str, at: datetime, *, post: bool
    ) -> bool:
        if message.dlr_url is None or not message.dlr_mask & bit:
            return True
        values = {
            "d": str(bit),
            "A": reply,
            "F": message.smsc_message_id,
            "P": message.to,
            "p": message.sender,
            "i": self.smsc,
            "I": str(uuid.uuid4()),  # every report is a new Kannel message
        }
        url = fill_escapes(message.dlr_url, values, at)
        if not post:
            return await self._call(message, "GET", url, b"", kannel=True)
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(name, value) for name, value in pairs if name == "token"]
        moved = [(name, value) for name, value in pairs if name != "token"]
        bare = urlunsplit(parts._replace(query=urlencode(kept)))
        return await self._call(message, "POST", bare, urlencode(moved).encode(), kannel=True)

    async def _jasmin(self, message: FakeMessage, level: int, fields: dict[str, str]) -> bool:
        if message.dlr_url is None or message.dlr_level not in (level, 3):
            return True
        args = {"id": message.id, "level": str(level), "connector": self.smsc, **fields}
        if message.method == "GET":
            joiner = "&" if urlsplit(message.dlr_url).query else "?"
            url = f"{message.dlr_url}{joiner}{urlencode(args)}"
            return await self._call(message, "GET", url, b"", kannel=False)
        return await self._call(
            message, "POST", message.dlr_url, urlencode(args).encode(), kannel=False
        )

    async def _call(
        self, message: FakeMessage, method: str, url: str, body: bytes, *, kannel: bool
    ) -> bool:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Kannel/1.4.5" if kannel else "Jasmin gateway/1.0 DLRThrower",
        }
        async with httpx.AsyncClient(timeout=10.0) as client:
            for attempt in range(self.max_retries + 1):
                if attempt:
                    await asyncio.sleep(self.retry_delay)
                try:
                    response = await client.request(method, url, content=body, headers=headers)
                    status, answer = response.status_code, response.text
                except httpx.HTTPError as error:
                    status, answer = None, repr(error)
                self.attempts.append(DlrAttempt(message.id, method, url, body, status, answer))
                if status is None:
                    continue
                if kannel and status in (200, 202):
                    return True
                if not kannel and status < 400 and answer.strip() == JASMIN_ACK:
                    return True
                if not kannel and status == 404:  # Jasmin's one error it never retries
                    return False
        return False

    def attempts_for(self, message_id: str) -> list[DlrAttempt]:
        return [attempt for attempt in self.attempts if attempt.message_id == message_id]


def fill_escapes(pattern: str, values: dict[str, str], at: datetime) -> str:
    """Kannel's `urltrans_fill_escape_codes` for the escapes a DLR carries.

    Values are URL-encoded as Kannel does; `%T` is Unix time and `%t` the same
    in UTC as `YYYY-MM-DD+HH:MM:SS`; `%%` is `%`; other escapes stay as they are.
    """
    out: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char != "%" or position + 1 == len(pattern):
            out.append(char)
            position += 1
            continue
        code = pattern[position + 1]
        if code in values:
            out.append(quote_plus(values[code], safe=KANNEL_SAFE))
        elif code == "T":
            out.append(str(int(at.timestamp())))
        elif code == "t":
            out.append(at.astimezone(UTC).strftime("%Y-%m-%d+%H:%M:%S"))
        elif code == "%":
            out.append("%")
        else:
            out.append(f"%{code}")
        position += 2
    return "".join(out)
