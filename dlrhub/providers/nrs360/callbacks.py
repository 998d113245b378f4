"""360NRS (`nrs360`): event notifications, delivery receipts and progress notifications.

`normalize(raw, options)` dispatches on `raw.kind`, the route the callback came in on.
Every callback yields exactly one event; anything that cannot be read is a
`NormalizeError`. `raw.method` and `raw.content_type` are not checked: the route
decides how the payload is read. Every event has `provider` `nrs360`, the
callback's `source` and `received_at`, `seq` 0 and the id
`uuid7(received_at, f"{raw.dedupe_key()}/{index}")`, so the same callback received
at the same moment always gives the same ids. An event that could not be stored
as JSON (an `extra` nested deeper than orjson writes) is a `NormalizeError` too.

## `events` — event notifications (see providers/360nrs-api.txt ~l.7982)

POST, `application/x-www-form-urlencoded`, fields `id, channel, contactId,
campaignId, formId, campaignName, event, extra, smtpResponse, eventDate`.

| `event`                | type                 | status        |
|------------------------|----------------------|---------------|
| `sent`                 | `message.status`     | `sent`        |
| `delivered`            | `message.status`     | `delivered`   |
| `undelivered`          | `message.status`     | `undelivered` |
| `rejected`             | `message.status`     | `rejected`    |
| `expired`              | `message.status`     | `expired`     |
| `hard_bounced`         | `message.status`     | `failed`      |
| `soft_bounced`         | `message.status`     | `undelivered` |
| `opened`               | `message.engagement` | none          |
| `clicked`              | `message.engagement` | none          |
| `unsubscribed`         | `message.engagement` | none          |
| `complaint`            | `message.engagement` | none          |
| `unsubscribed_landing` | `message.engagement` | none          |
| `form_opened`          | `message.engagement` | none          |
| `form_submitted`       | `message.engagement` | none          |
| `form_rejected`        | `message.engagement` | none          |
| anything else          | `message.status`     | `unknown`     |

- `event` is matched case-insensitively after trimming whitespace;
  `provider_status` keeps it exactly as sent. A missing or blank `event` is an error.
- A source's `status_map` (keys compared case-insensitively) replaces the status
  of any `event` value it names, engagement ones included; the type is kept.
- Field names and values are percent-decoded (`+` is a space, as in any form
  body) to bytes, then read as UTF-8; a value that is not valid UTF-8 is read as
  latin-1 instead (a PHP sender may `urlencode` latin-1 text). When a field comes
  twice, the first one counts.
- `message_id` is `id`, or none when it is blank: the document says a message sent
  from the web has no `id` (~l.7982). Such a notification is stored, not quarantined
  like a receipt without identity (see `dlr`): 360NRS sends it that way by design,
  no configuration could give it an id, so quarantine would hold it for good. It is
  merged with nothing: it is its own event (its duplicate key is the whole form),
  it never enters a message's state (`/v1/messages`), and `extra.campaignId` with
  `extra.contactId` name the web send's message. `channel` is lower-cased;
  recipient and sender are not in this payload.
- `extra` holds, under the provider's own names, the fields that are present and
  not blank: `contactId`, `campaignId`, `formId` (documented as integers: an int
  when written as a plain decimal that fits in 63 bits, else the text),
  `campaignName`, `smtpResponse` (mailing only), `eventDate` (the original text)
  and `extra` (the `extra` field parsed as JSON; blank means absent, invalid JSON
  is an error).

## `dlr` — delivery receipts on `notificationUrl` (see providers/360nrs-api.txt ~l.283)

GET on the customer's URL after 360NRS replaces Kannel-style `%` escapes, e.g.
`?status=%d&phone=%P&sender=%p&ref=abc`. The query string is split on `&` and on
the first `=`, then percent-decoded (invalid escapes are kept, undecodable bytes
become U+FFFD). A literal `+` stays `+`, because phone numbers arrive as `+34…`,
unless the source sets `dlr_plus_as_space`. When a parameter comes twice, the first
one counts. Parameter names are case-sensitive; `options.dlr_params` renames them
(fields it does not name keep the names of `DEFAULT_DLR_PARAMS`).

360NRS's own table of `%d` values is missing from our copy of the document
(l.293-295 announce it and are followed by nothing). The escapes are Kannel's, so
the statuses below assume Kannel's `dlr-url` meanings; a source's `status_map`
(checked first, keys case-insensitive) overrides them.

| `%d` value                                         | status        |
|----------------------------------------------------|---------------|
| `1` (delivered to phone)                           | `delivered`   |
| `2` (non-delivered to phone)                       | `undelivered` |
| `4` (queued on SMSC)                               | `queued`      |
| `8` (delivered to SMSC)                            | `sent`        |
| `16` (non-delivered to SMSC)                       | `rejected`    |
| `34` (Kannel: expired)                             | `expired`     |
| `66` (Kannel: unknown)                             | `unknown`     |
| `delivered`, `delivrd`, `entregado`                | `delivered`   |
| `undelivered`, `undeliv`, `undeliverable`, `soft_bounced`, `no_entregado` | `undelivered` |
| `expired`, `expirado`, `caducado`                  | `expired`     |
| `rejected`, `rejectd`, `rechazado`                 | `rejected`    |
| `accepted`, `acceptd`                              | `accepted`    |
| `enroute`, `sent`, `enviado`                       | `sent`        |
| `queued`, `buffered`, `pending`, `pendiente`       | `queued`      |
| `failed`, `deleted`, `hard_bounced`, `fallido`     | `failed`      |
| `unknown`, an unsubstituted `%d`, anything else    | `unknown`     |

Numbers are matched by value (`08` is `8`), not as bit sets: Kannel sends one
value per report. Words are matched case-insensitively after trimming. The Spanish
words and 360NRS's own event names are guesses of ours that cost nothing when
wrong. `provider_status` keeps the value as sent; a missing or blank status is an
error.

The event: type `message.status`, channel `sms`, `correlation_id` = `ref`,
`message_id` = the `message_id` parameter, else `ref`; `recipient` = `phone`,
`sender` = `sender`; `occurred_at` from `timestamp` (Kannel `%T`, Unix seconds,
or `%t`, `YYYY-MM-DD HH:MM`; see "Times" below). `extra` holds `smsc_id` and
`smsc_reply` when present and `params`, every other parameter by name (always
there, maybe empty). A parameter named `token` (the source's credential) is left
out entirely (any case of the name); other secret-named ones are redacted before
the event is stored.

A receipt with neither a `message_id` nor a `ref` (blank counts as absent), such
as the document's own example `?sender=%p&phone=%P&status=%d&customId=123456`
(l.301) read with the default `dlr_params`, names no message: stored, it would
carry `message_id: null` and could not be told apart from any other such receipt.
It is quarantined instead, with a reason starting `no_message_identity:` that
names the parameters it did have; set `dlr_params.ref` (here `customId`) and run
`dlrhub quarantine reprocess`. A missing status is reported first.

## `progress` — e-mail validation progress (see providers/360nrs-api.txt ~l.5061)

POST JSON `{"data": {"id", "status", "total", "processed", "valid", "cost",
"currency", "createdAt", "updatedAt", "finishedAt", "resultUrl", "error"}}`. The
document shows the JSON but never its Content-Type, so the route takes any (or
none) when the body parses as JSON (`Route.lenient_content_type`); a body that
does not parse is answered 415 unless it came as `application/json` (then it is
quarantined).
Type `job.progress`, channel `email_validation`, status none, `provider_status`
= `data.status` (`started`, `finished`, `failed`; required, any text kept),
`message_id` = `data.id` as text (a string or an integer; none when absent: a
job's progress is not a message's receipt, and it is stored), `occurred_at` = the
first non-empty of `finishedAt`, `updatedAt`, `createdAt` (an integer there is
Unix seconds), `extra` = `data` as sent.

## Times

The document gives no format or zone for `eventDate`. Its answers carry ISO 8601
with `+00:00` (l.433) and some `YYYY-MM-DD HH:MM:SS` (l.2340); its requests take
`YYYYmmddHHiiss` in UTC (l.209). Accepted, after trimming whitespace:

- ISO 8601 date and time, `T` or space between (or `+`: Kannel's `%t` in a
  query whose `+` was not read as a space), optional seconds and fraction,
  optional `Z` or `±HH[:MM]` offset (` HH:MM` is read as `+HH:MM`: a form
  body whose sender did not encode the `+`);
- `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD HH:MM` (covered by the previous line);
- `DD/MM/YYYY HH:MM:SS`;
- exactly 14 digits: `YYYYmmddHHiiss` (a Unix time of 14 digits is past year 9999);
- any other run of digits: Unix time in seconds.

A time without an offset is in `options.timezone` (default `UTC`: the document
names no zone for these callbacks, but gives every other date "en formato UTC",
~l.209, and its API answers carry `+00:00`, ~l.433; set e.g. `Europe/Madrid`
per source if your account's callbacks turn out to be in Spain's local time).
A local time that falls in a DST gap or overlap takes the offset in force before
the change. The result is converted to UTC and must lie in 1970-9998. Blank means
no `occurred_at`; anything else, or an unknown `options.timezone` when a naive
time needs it, is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote_to_bytes

import orjson

from dlrhub.event import Event, EventType, JSONValue, RawCallback, Status
from dlrhub.name_cache import cached_for_short_names
from dlrhub.normalizers import kannel
from dlrhub.normalizers.base import NoMessageIdentity, NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import event_id
from dlrhub.normalizers.kannel import excerpt as _quote
from dlrhub.normalizers.kannel import mapped_status as _mapped_status
from dlrhub.normalizers.kannel import present as _present
from dlrhub.normalizers.kannel import stripped as _stripped

PROVIDER = "nrs360"
DLR_CHANNEL = "sms"
PROGRESS_CHANNEL = "email_validation"

EVENT_STATUSES: Mapping[str, Status] = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "rejected": Status.REJECTED,
    "expired": Status.EXPIRED,
    "hard_bounced": Status.FAILED,
    "soft_bounced": Status.UNDELIVERED,
}

ENGAGEMENT_EVENTS: frozenset[str] = frozenset(
    {
        "opened",
        "clicked",
        "unsubscribed",
        "complaint",
        "unsubscribed_landing",
        "form_opened",
        "form_submitted",
        "form_rejected",
    }
)

# The words of a delivery receipt's status: Kannel's and SMPP's (shared with the
# smsgateway provider, see dlrhub/normalizers/kannel.py), 360NRS's own event
# names, and Spanish guesses of ours. The `%d` numbers are Kannel's
# (kannel.KANNEL_DLR_STATUSES): 360NRS's own table is missing from our copy.
DLR_WORD_STATUSES: Mapping[str, Status] = {
    **EVENT_STATUSES,
    **kannel.DLR_WORD_STATUSES,
    "entregado": Status.DELIVERED,
    "no_entregado": Status.UNDELIVERED,
    "expirado": Status.EXPIRED,
    "caducado": Status.EXPIRED,
    "rechazado": Status.REJECTED,
    "enviado": Status.SENT,
    "pendiente": Status.QUEUED,
    "fallido": Status.FAILED,
}

# Default names of the query parameters of a delivery receipt (GET on the
# notificationUrl). Only status, phone, sender and ref are in the default URL
# template; the others are read when present under these names.
DEFAULT_DLR_PARAMS: Mapping[str, str] = {
    "status": "status",
    "phone": "phone",
    "sender": "sender",
    "ref": "ref",
    "message_id": "id",
    "smsc_id": "smsc_id",
    "smsc_reply": "reply",
    "timestamp": "ts",
}

# Fields of a delivery receipt that `SourceOptions.dlr_params` can rename.
DLR_FIELDS: tuple[str, ...] = (
    "status",
    "phone",
    "sender",
    "ref",
    "message_id",
    "smsc_id",
    "smsc_reply",
    "timestamp",
)

# The fields of an event notification (see providers/360nrs-api.txt ~l.7982).
EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "channel",
    "contactId",
    "campaignId",
    "formId",
    "campaignName",
    "event",
    "extra",
    "smtpResponse",
    "eventDate",
)

REDACTED_PARAM = "token"

# 360NRS's times, in every callback and in its API answers (answers.py).
_parse_time = kannel.parse_time

_PLAIN_INT = re.compile(r"0|[1-9][0-9]{0,17}")


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Turn one 360NRS callback into events, or raise `NormalizeError`."""
    normalizer = _NORMALIZERS_BY_KIND.get(raw.kind)
    if normalizer is None:
        raise NormalizeError(
            f"360NRS callbacks arrive as 'events', 'dlr' or 'progress', not {_quote(raw.kind)}."
        )
    return [_serializable(normalizer(raw, options))]


def normalize_event_notification(raw: RawCallback, options: SourceOptions) -> Event:
    """An `events` callback: one form-encoded event notification."""
    fields = _parse_form(raw.body)
    provider_status = fields.get("event", "")
    event_name = provider_status.strip().lower()
    if not event_name:
        raise NormalizeError(
            "The event notification has no 'event' field, so it tells nothing to record."
        )
    event_type = EventType.MESSAGE_STATUS
    status: Status | None = EVENT_STATUSES.get(event_name, Status.UNKNOWN)
    if event_name in ENGAGEMENT_EVENTS:
        event_type = EventType.MESSAGE_ENGAGEMENT
        status = None
    mapped = _mapped_status(event_name, options)
    if mapped is not None:
        status = mapped

    extra: dict[str, JSONValue] = {}
    for name in ("contactId", "campaignId", "formId"):
        if value := _present(fields.get(name)):
            extra[name] = _int_or_text(value.strip())
    for name in ("campaignName", "smtpResponse", "eventDate"):
        if value := _present(fields.get(name)):
            extra[name] = value
    if extra_text := _present(fields.get("extra")):
        extra["extra"] = _parse_extra_json(extra_text)

    event_date = _present(fields.get("eventDate"))
    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=event_type,
        received_at=raw.received_at,
        channel=_stripped(fields.get("channel"), lower=True),
        message_id=_stripped(fields.get("id")),
        status=status,
        provider_status=provider_status,
        occurred_at=_parse_time(event_date, options.timezone, "eventDate") if event_date else None,
        extra=extra,
    )


def normalize_delivery_receipt(raw: RawCallback, options: SourceOptions) -> Event:
    """A `dlr` callback: the GET 360NRS makes on the send's `notificationUrl`."""
    params = kannel.parse_query(raw.query, plus_as_space=options.dlr_plus_as_space)
    names = {**DEFAULT_DLR_PARAMS, **options.dlr_params}
    mapped_names = {names[field] for field in DLR_FIELDS}

    def take(field: str) -> str | None:
        return _stripped(params.get(names[field]))

    provider_status = _present(params.get(names["status"]))
    if provider_status is None:
        raise NormalizeError(
            f"The delivery receipt has no status in parameter {_quote(names['status'])}; "
            "check the source's dlr_params against the notificationUrl template."
        )
    ref = take("ref")
    message_id = take("message_id") or ref
    if message_id is None:
        raise NoMessageIdentity(
            f"the delivery receipt has no ref in parameter {_quote(names['ref'])} and no "
            f"message id in parameter {_quote(names['message_id'])}, so it cannot be told "
            f"apart from other receipts{_unread(params, mapped_names)}; name the parameter "
            "of your ref in the source's dlr_params.ref (or put a ref in the "
            "notificationUrl), then run 'dlrhub quarantine reprocess'."
        )
    timestamp = take("timestamp")

    extra: dict[str, JSONValue] = {}
    for field in ("smsc_id", "smsc_reply"):
        if value := take(field):
            extra[field] = value
    extra["params"] = {
        name: value
        for name, value in params.items()
        if name not in mapped_names and name.lower() != REDACTED_PARAM
    }
    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.MESSAGE_STATUS,
        received_at=raw.received_at,
        channel=DLR_CHANNEL,
        message_id=message_id,
        correlation_id=ref,
        recipient=take("phone"),
        sender=take("sender"),
        status=kannel.dlr_status(provider_status, options, DLR_WORD_STATUSES),
        provider_status=provider_status,
        occurred_at=_parse_time(timestamp, options.timezone, "timestamp") if timestamp else None,
        extra=extra,
    )


def _unread(params: Mapping[str, str], mapped_names: set[str]) -> str:
    """The names of the parameters no field reads, for the reason of a receipt without identity."""
    unread = [
        _quote(name)
        for name in params
        if name not in mapped_names and name.lower() != REDACTED_PARAM
    ]
    return f" (its other parameters: {', '.join(unread[:10])})" if unread else ""


def normalize_progress_notification(raw: RawCallback, options: SourceOptions) -> Event:
    """A `progress` callback: the JSON notification of an e-mail validation job."""
    try:
        document = orjson.loads(raw.body)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError(f"The progress notification is not valid JSON: {exc}.") from exc
    if not isinstance(document, dict):
        raise NormalizeError("The progress notification is not a JSON object.")
    data = document.get("data")
    if not isinstance(data, dict):
        raise NormalizeError("The progress notification has no 'data' object.")
    provider_status = data.get("status")
    if not isinstance(provider_status, str) or not provider_status.strip():
        raise NormalizeError("The progress notification has no 'data.status' text.")

    job_id = data.get("id")
    message_id: str | None
    if job_id is None or job_id == "":
        message_id = None
    elif isinstance(job_id, str) or (isinstance(job_id, int) and not isinstance(job_id, bool)):
        message_id = str(job_id)
    else:
        raise NormalizeError(
            f"The progress notification's 'data.id' is a {type(job_id).__name__}, "
            "not a string or an integer."
        )

    occurred_at = None
    for name in ("finishedAt", "updatedAt", "createdAt"):
        value = data.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise NormalizeError(
                f"The progress notification's 'data.{name}' is a {type(value).__name__}, "
                "not a date."
            )
        occurred_at = _parse_time(value, options.timezone, f"data.{name}")
        break

    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.JOB_PROGRESS,
        received_at=raw.received_at,
        channel=PROGRESS_CHANNEL,
        message_id=message_id,
        status=None,
        provider_status=provider_status,
        occurred_at=occurred_at,
        extra=data,
    )


_NORMALIZERS_BY_KIND: Mapping[str, Callable[[RawCallback, SourceOptions], Event]] = {
    "events": normalize_event_notification,
    "dlr": normalize_delivery_receipt,
    "progress": normalize_progress_notification,
}


def _serializable(event: Event) -> Event:
    """Refuse an event the store could not write (JSON nested too deep for orjson)."""
    try:
        orjson.dumps(event.extra)  # the only part whose depth the payload controls
    except orjson.JSONEncodeError as exc:
        raise NormalizeError(f"The callback's data cannot be stored as JSON: {exc}.") from exc
    return event


def _parse_form(body: bytes) -> dict[str, str]:
    # `+` is a space anywhere in a form body (a literal plus is `%2B`), so one
    # replace serves every field; names repeat on every callback and are looked up.
    if body.find(b"+") >= 0:  # `find`: `in` on bytes first tries the operand as an int
        body = body.replace(b"+", b" ")
    fields: dict[str, str] = {}
    for piece in body.split(b"&"):
        name, _, value = piece.partition(b"=")
        field = _FORM_NAMES.get(name)
        if field is None:
            if not piece:
                continue
            field = _decode_form_name(name)
        if field not in fields:
            fields[field] = _decode_form_text(value)
    return fields


# The field names as they arrive, looked up rather than decoded.
_FORM_NAMES: Mapping[bytes, str] = {name.encode(): name for name in EVENT_FIELDS}


def _decode_form_text(encoded: bytes) -> str:
    """Percent-decoded UTF-8, else latin-1; `+` is already a space."""
    if encoded.find(b"%") >= 0:
        encoded = unquote_to_bytes(encoded)
    try:
        return encoded.decode()
    except UnicodeDecodeError:
        return encoded.decode("latin-1")


_decode_form_name = cached_for_short_names(_decode_form_text)


def _int_or_text(value: str) -> int | str:
    return int(value) if _PLAIN_INT.fullmatch(value) else value


def _parse_extra_json(text: str) -> JSONValue:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError(f"The 'extra' field is not valid JSON: {exc}.") from exc
