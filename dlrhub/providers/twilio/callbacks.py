"""Twilio (`twilio`): message status callbacks, signed with the account's auth token.

Twilio POSTs a form to a message's `StatusCallback` URL each time the message's
status changes after it was created; the status it was created with (`queued`,
or `accepted` / `scheduled` through a Messaging Service) gets no callback (see
twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks).
dlrhub serves it at `POST /hooks/{source}/status`:

```toml
[server]
public_url = "https://dlr.example.com"  # the address Twilio calls: it is part of the signature

[[sources]]
name = "twilio"
provider = "twilio"
auth_token = "your-account-auth-token"  # DLRHUB_SOURCES__TWILIO__AUTH_TOKEN
```

and the message's (or the Messaging Service's) `StatusCallback` is
`https://dlr.example.com/hooks/twilio/status`, which `dlrhub serve` prints. The
source's credential is `auth_token` (`token` is refused), with `status_map`,
`timezone` and `allow_ips` as for any source; there are no `dlr_params`. Twilio
answers nothing dlrhub needs: any 2xx ends the callback.

## Authentication: `X-Twilio-Signature`

Every callback must carry Twilio's signature: base64(HMAC-SHA1(auth token, the
URL as Twilio called it, query string included, followed by every POST
parameter's name and value, sorted by name)); see
twilio.com/docs/usage/webhooks/webhooks-security. A missing or wrong signature is
answered 403 and nothing is stored. As Twilio's own validator (twilio-python
`RequestValidator`) does:

- a parameter name that comes several times contributes each of its values,
  sorted by value;
- the URL is accepted with its port removed and with its port written out (443
  or 80 added when it has none): Twilio signs either form;
- signatures are compared in constant time.

**The URL is the one Twilio called**: `server.public_url` followed by the path
and query string as received. Without `public_url` it is the address dlrhub
listens on (`http://127.0.0.1:8080/...`), right only when Twilio calls dlrhub
directly. Behind a reverse proxy set `public_url` to the address Twilio calls
(scheme, host and port exactly as in `StatusCallback`): the `Host` and
`X-Forwarded-*` headers are never used, so a caller cannot choose the URL that
is checked. Query parameters you add to `StatusCallback` are signed with it.

Not supported (403): JSON webhooks signed over `bodySHA256`, and Webhook Rules'
`X-Twilio-Webhooks-Signature-Settings` (HMAC-SHA256 with a shared key).

## Statuses

`MessageStatus` is matched case-insensitively after trimming whitespace;
`provider_status` keeps it exactly as sent. A source's `status_map` (keys compared
case-insensitively) is checked first and replaces any of these.

| `MessageStatus`       | status        | why                                                     |
|-----------------------|---------------|---------------------------------------------------------|
| `accepted`            | `accepted`    | a Messaging Service took it                             |
| `scheduled`           | `accepted`    | a Messaging Service will send it later                  |
| `queued`              | `queued`      | waiting to be sent                                      |
| `sending`             | `queued`      | being handed to the carrier; not sent yet               |
| `sent`                | `sent`        | the carrier took it                                     |
| `delivered`           | `delivered`   | the carrier confirmed delivery                          |
| `undelivered`         | `undelivered` | the carrier could not deliver it                        |
| `failed`              | `failed`      | never sent (see `ErrorCode`)                            |
| `read`                | `delivered`   | a read receipt (WhatsApp, RCS): delivered, and read     |
| `canceled`            | `failed`      | a scheduled message canceled: it will never be sent     |
| `partially_delivered` | `undelivered` | the recipient did not get the whole message             |
| `receiving`           | `queued`      | an inbound message Twilio is still receiving            |
| `received`            | `delivered`   | an inbound message Twilio has received                  |
| anything else         | `unknown`     |                                                         |

Twilio's documents give the values but no common vocabulary; the right column is
our choice. `read` stays `message.status` (not an engagement) because Twilio
reports it as the message's status; `canceled` and `partially_delivered` are the
choices most likely to differ from yours: `status_map` changes them, e.g.
`partially_delivered = "delivered"`.

## Fields

The body is read as a form: names and values percent-decoded (`+` is a space) and
read as UTF-8, undecodable bytes becoming U+FFFD. When a field comes twice, the
first one counts.

| field              | event                                                        |
|--------------------|--------------------------------------------------------------|
| `MessageSid`       | `message_id` (required: see below)                           |
| `MessageStatus`    | `status`, `provider_status` (required: missing or blank is an error) |
| `To`               | `recipient`                                                  |
| `From`             | `sender`                                                     |
| `RawDlrDoneDate`   | `occurred_at` (see "Times"), and kept in `extra`             |
| every other field  | `extra`, under Twilio's name, as sent                        |

`extra` thus holds `AccountSid`, `ApiVersion`, `SmsSid`, `SmsStatus` (legacy
copies of `MessageSid` and `MessageStatus`), `MessagingServiceSid`, `ErrorCode`,
`ErrorMessage` and whatever Twilio adds (it adds fields without notice), when
present and not blank. The event's type is `message.status`; it has no
`correlation_id`. A callback without `MessageSid` (missing or blank) names no
message: it is quarantined with a reason starting `no_message_identity:`, as
receipts without identity are for every provider.

**Channel.** `To` and `From` of a WhatsApp message are `whatsapp:+14155238886`:
a prefix of letters, digits, `+`, `.` or `-` starting with a letter, then `:`,
names the channel (`whatsapp`, `messenger`, `rcs`, lower-cased; `To`'s first,
else `From`'s), and `recipient` / `sender` are the address after it. Without a
prefix the channel is `sms` (MMS included: the callback does not tell them apart).

**Error codes.** `ErrorCode` is kept as sent (text) and does not change the
status, which comes from `MessageStatus` alone. The ones seen most on SMS (see
twilio.com/docs/api/errors):

| `ErrorCode` | meaning                                               |
|-------------|-------------------------------------------------------|
| `30001`     | queue overflow: sent too fast                         |
| `30002`     | account suspended                                     |
| `30003`     | unreachable destination handset (off, out of reach)   |
| `30004`     | message blocked (by the recipient or the carrier)     |
| `30005`     | unknown destination handset (no such number)         |
| `30006`     | landline or unreachable carrier                       |
| `30007`     | message filtered by the carrier (spam, content)       |
| `30008`     | unknown error                                         |
| `30009`     | missing segment                                       |
| `30010`     | message price exceeds the max price                   |

## Times

`RawDlrDoneDate` is the carrier's delivery-receipt "done date", passed through
by Twilio on `delivered` and `undelivered` (not always): `YYMMDDhhmm`, minute
precision, no zone ("the timezone offset varies between carrier partners",
Twilio's changelog of 2023-02-14). It is read as 20YY in the source's `timezone`
(default `UTC`) and converted to UTC. A value that is not ten digits or not a
real date leaves `occurred_at` empty rather than quarantining the callback: the
field is the carrier's, and the status beside it is still good. An unknown
`timezone` is an error when a date needs it. No other field carries a time, so
the other callbacks have no `occurred_at` (`received_at` orders them).

Every event has `provider` `twilio`, the callback's `source` and `received_at`,
`seq` 0 and the id `uuid7(received_at, f"{raw.dedupe_key()}/0")`, so the same
callback received at the same moment always gives the same id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from urllib.parse import unquote_to_bytes
from zoneinfo import ZoneInfo

from dlrhub.event import Event, EventType, JSONValue, RawCallback, Status
from dlrhub.normalizers.base import NoMessageIdentity, NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import event_id

PROVIDER = "twilio"
KIND = "status"
DEFAULT_CHANNEL = "sms"

STATUSES: Mapping[str, Status] = {
    "accepted": Status.ACCEPTED,
    "scheduled": Status.ACCEPTED,
    "queued": Status.QUEUED,
    "sending": Status.QUEUED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "read": Status.DELIVERED,
    "canceled": Status.FAILED,
    "partially_delivered": Status.UNDELIVERED,
    "receiving": Status.QUEUED,
    "received": Status.DELIVERED,
}

# The fields of a status callback (twilio.com/docs/messaging/guides/track-outbound-message-status).
FIELDS: tuple[str, ...] = (
    "MessageSid",
    "MessageStatus",
    "SmsSid",
    "SmsStatus",
    "AccountSid",
    "MessagingServiceSid",
    "From",
    "To",
    "ApiVersion",
    "ErrorCode",
    "ErrorMessage",
    "RawDlrDoneDate",
)

# Fields that become the event's own; every other one goes to `extra`.
EVENT_FIELDS = frozenset({"MessageSid", "MessageStatus", "To", "From"})

_CHANNEL_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.DOTALL)
_DONE_DATE = re.compile(r"[0-9]{10}")


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """One event for a status callback; a `NormalizeError` for anything unreadable."""
    if raw.kind != KIND:
        raise NormalizeError(f"Twilio callbacks come in on 'status', not {_quote(raw.kind)}.")
    return [normalize_status_callback(raw, options)]


def normalize_status_callback(raw: RawCallback, options: SourceOptions) -> Event:
    fields = parse_form(raw.body)
    message_sid = _stripped(fields.get("MessageSid"))
    if message_sid is None:
        raise NoMessageIdentity(
            "the status callback has no 'MessageSid', so it names no message to record."
        )
    provider_status = fields.get("MessageStatus")
    if provider_status is None or not provider_status.strip():
        raise NormalizeError("The status callback has no 'MessageStatus', so it tells nothing.")
    to_channel, recipient = _split_address(fields.get("To"))
    from_channel, sender = _split_address(fields.get("From"))
    extra: dict[str, JSONValue] = {
        name: value for name, value in fields.items() if name not in EVENT_FIELDS and value.strip()
    }
    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.MESSAGE_STATUS,
        received_at=raw.received_at,
        channel=to_channel or from_channel or DEFAULT_CHANNEL,
        message_id=message_sid,
        recipient=recipient,
        sender=sender,
        status=message_status(provider_status, options),
        provider_status=provider_status,
        occurred_at=done_date(fields.get("RawDlrDoneDate"), options.timezone),
        extra=extra,
    )


def message_status(provider_status: str, options: SourceOptions) -> Status:
    """The common status of a `MessageStatus`: the source's `status_map` first."""
    wanted = provider_status.strip().lower()
    for key, status in options.status_map.items():
        if key.strip().lower() == wanted:
            try:
                return Status(status)
            except ValueError:
                raise NormalizeError(
                    f"The source's status_map sends {_quote(key)} to {_quote(str(status))}, "
                    "which is not a status."
                ) from None
    return STATUSES.get(wanted, Status.UNKNOWN)


def done_date(text: str | None, timezone: str) -> datetime | None:
    """`RawDlrDoneDate` (`YYMMDDhhmm` in `timezone`) in UTC; None when absent or unreadable."""
    value = text.strip() if text is not None else ""
    if not _DONE_DATE.fullmatch(value):
        return None
    try:
        local = datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
        )
    except ValueError:
        return None
    return local.replace(tzinfo=_zone(timezone)).astimezone(UTC)


def parse_form(body: bytes) -> dict[str, str]:
    """The form's fields, decoded as UTF-8 (U+FFFD for bad bytes); the first of a name counts."""
    fields: dict[str, str] = {}
    for piece in body.replace(b"+", b" ").split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        fields.setdefault(_decode(name), _decode(value))
    return fields


def _decode(encoded: bytes) -> str:
    return unquote_to_bytes(encoded).decode("utf-8", "replace")


def _split_address(value: str | None) -> tuple[str | None, str | None]:
    """(channel, address) of a `To` / `From`: `whatsapp:+1...` is ('whatsapp', '+1...')."""
    if value is None:
        return None, None
    found = _CHANNEL_PREFIX.fullmatch(value.strip())
    if found is None:
        return None, _stripped(value)
    return found[1].lower(), _stripped(found[2])


def _stripped(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()


def _zone(timezone: str) -> tzinfo:
    if timezone == "UTC":
        return UTC
    try:
        return ZoneInfo(timezone)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError, OSError, ...
        raise NormalizeError(
            f"The source's timezone {_quote(timezone)} is not an IANA zone name "
            "(e.g. Europe/Madrid or UTC)."
        ) from exc


def _quote(value: str, limit: int = 80) -> str:
    """`repr` of a value for an error message, cut to `limit` characters."""
    return repr(value[:limit]) + ("…" if len(value) > limit else "")
