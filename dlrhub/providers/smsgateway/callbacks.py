"""SMS gateways (`smsgateway`): Kannel's `dlr-url`, Jasmin's DLRs, any SMPP gateway alike.

A source with `provider = "smsgateway"` (or `kannel`, `jasmin`) serves one route,
`/hooks/{source}/dlr`, by GET (parameters in the query) or POST
(`application/x-www-form-urlencoded`; the query's parameters count too, and
come first). It authenticates like a 360NRS source: `?token=` in the URL or the
token as the HTTP Basic password, and `allow_ips`. Every 200 answer's body is
exactly `ACK/Jasmin` (text/plain), stored, duplicate or quarantined alike:
Jasmin retries a DLR until it reads that body, and Kannel ignores the body.

`normalize(raw, options)` gives exactly one event per callback, type
`message.status`, channel `sms`, provider `smsgateway`, id
`uuid7(received_at, f"{raw.dedupe_key()}/0")` (a gateway's retry is the same
callback and is stored once); anything it cannot read is a `NormalizeError`
(the callback is quarantined). Parameters are split on `&` and the first `=`
and percent-decoded; `+` is always a space, because both gateways encode values
as a form does (Kannel writes a space as `+` and a plus as `%2B`, gw/urltrans.c),
so these sources have no `dlr_plus_as_space` key. Invalid escapes are kept,
undecodable bytes become U+FFFD, and the first of a repeated parameter counts.

## Kannel or Jasmin?

A callback with a `message_status` or a `level` parameter is Jasmin's (its field
names are fixed), unless the source's `dlr_params` use that name; anything else
is read as a Kannel `dlr-url`. Jasmin's own fields are read under Jasmin's
names; `ref`, `phone` and `sender`, the parameters you may add to the URL
yourself, are read under their `dlr_params` names in both formats.

## Kannel `dlr-url` (and any gateway filling Kannel's escapes)

You build the URL, so the parameter names are yours (`dlr_params`). Defaults:

| field         | default name  | escape       | goes to                             |
|---------------|---------------|--------------|-------------------------------------|
| `status`      | `status`      | `%d`         | `provider_status`, `status`         |
| `phone`       | `phone`       | `%P`         | `recipient`                         |
| `sender`      | `sender`      | `%p`         | `sender`                            |
| `ref`         | `ref`         | your own id  | `correlation_id`                    |
| `message_id`  | `msgid`       | `%F`         | `message_id`                        |
| `smsc_id`     | `smsc_id`     | `%i`         | `extra.smsc_id`                     |
| `internal_id` | `internal_id` | `%I`         | `extra.internal_id`                 |
| `smsc_reply`  | `reply`       | `%A`         | `extra.smsc_reply`, `extra.receipt` |
| `timestamp`   | `ts`          | `%T` or `%t` | `occurred_at`                       |

e.g. `dlr-url=https://dlr.example.com/hooks/gw/dlr?token=T&status=%d&phone=%P&sender=%p&msgid=%F&smsc_id=%i&internal_id=%I&reply=%A&ts=%T&ref=order-77`
(URL-encoded once more when you pass it to `sendsms`). Kannel's own smsbox calls
it by GET; a gateway that POSTs the same parameters as a form is read the same.

A value that is still an escape (`%d`, `%P`: a `%` and one letter) was not filled
in by the gateway: it counts as absent, and the parameter's name is listed in
`extra.unsubstituted`.

### Status

`%d` is Kannel's report bit (gw/dlr.h). For reports 1, 2 and 4 Kannel folds the
SMSC's receipt into those three values (gw/smsc/smsc_smpp.c: `DELIVRD` is 1;
`ACCEPTD`, `ENROUTE`, `BUFFRED` are 4; everything else 2), while `%A` keeps the
receipt itself, whose `stat` says more (expired, rejected, deleted). So:

1. the source's `status_map` (keys case-insensitive), for the receipt's `stat`
   and then for `%d`;
2. the receipt's `stat`, when it is a word of the table below other than
   `UNKNOWN`;
3. `%d`, by the table below (a word there is read as a word);
4. `unknown`.

| `%d`                         | status        |
|------------------------------|---------------|
| `1` (delivered to phone)     | `delivered`   |
| `2` (non-delivered to phone) | `undelivered` |
| `4` (queued on SMSC)         | `queued`      |
| `8` (delivered to SMSC)      | `sent`        |
| `16` (non-delivered to SMSC) | `rejected`    |
| `34` (some builds: expired)  | `expired`     |
| `66` (some builds: unknown)  | `unknown`     |
| any other number             | `unknown`     |

| receipt `stat` or a word                  | status                                |
|-------------------------------------------|---------------------------------------|
| `DELIVRD`, `delivered`                    | `delivered`                           |
| `UNDELIV`, `undelivered`, `undeliverable` | `undelivered`                         |
| `EXPIRED`                                 | `expired`                             |
| `REJECTD`, `rejected`                     | `rejected`                            |
| `DELETED`, `failed`                       | `failed`                              |
| `ACCEPTD`, `accepted`                     | `accepted`                            |
| `ENROUTE`, `sent`                         | `sent`                                |
| `queued`, `buffered`, `pending`           | `queued`                              |
| `UNKNOWN`, anything else                  | `unknown` (as a `stat`: `%d` decides) |

Numbers are matched by value (`08` is `8`); words case-insensitively after
trimming. `provider_status` is `%d` as sent, or the receipt's `stat` when `%d`
is absent; a callback with neither is an error.

### The SMSC's reply (`%A`)

Kept as sent in `extra.smsc_reply`. When it holds `stat:` it is read as an SMPP
receipt, `id:X sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
stat:DELIVRD err:000 text:...` (keys in any order and case; `text` runs to the
end), and `extra.receipt` holds its fields as text: `id`, `sub`, `dlvrd`,
`submit_date`, `done_date`, `stat`, `err`, `text` (those present and not blank).
`extra.error_code` is the receipt's `err`, or the code of Kannel's
`NACK/0x0000000b/Invalid Destination Address` reply to a rejected send (16).

### Identity and time

`message_id` is `%F` (the SMSC's message id, the same on reports 8, 1, 2 and 4 of
one message), else `ref` (Kannel leaves `%F` empty on a 16); `correlation_id` is
`ref`. Put your `ref` in every `dlr-url`: it is what you know at send time.
`%I` is a new id on every report, so it is kept in `extra` but identifies
nothing; nor does the receipt's `id:` (in `%A`), which the SMSC may write in
another base than `%F` and which reports 8 and 16 lack, so that one message would
get two ids.

A DLR with neither `%F` nor `ref` names no message: stored, it would carry
`message_id: null` and could not be told apart from any other such DLR. It is
quarantined instead (and still answered `ACK/Jasmin`), with a reason starting
`no_message_identity:`; fix the `dlr-url` or the source's `dlr_params` and run
`dlrhub quarantine reprocess`. Other errors (a missing status, a bad `ts`) are
reported first.

`occurred_at` is the `timestamp` parameter, read as UTC whatever the source's
`timezone` (Kannel writes `%T` as Unix seconds and `%t` as
`YYYY-MM-DD+HH:MM:SS` in UTC, gw/urltrans.c; the forms of docs/providers/nrs360.md
"Times" are accepted; a value that is none of them is an error). Without it, the
receipt's done date (below); else none.

## Jasmin (jasmin/routing/throwers.py, DLRThrower)

Jasmin calls the `dlr-url` of a send made with `dlr=yes`, with `dlr-level` 1
(SMSC ack), 2 (terminal receipt) or 3 (both) and `dlr-method` GET or POST, with
these fields (level 1 has the first four only):

| field            | meaning                                    | goes to                       |
|------------------|--------------------------------------------|-------------------------------|
| `id`             | Jasmin's message id (the send's answer)    | `message_id`                  |
| `level`          | 1 SMSC ack, 2 terminal receipt             | `extra.level` (1-3: a number) |
| `message_status` | `ESME_*` at level 1, the `stat` at level 2 | `provider_status`, `status`   |
| `connector`      | as Jasmin fills it                         | `extra.connector`             |
| `id_smsc`        | the SMSC's message id                      | `extra.receipt.id`            |
| `sub`, `dlvrd`   | the receipt's counts                       | `extra.receipt.sub`, `dlvrd`  |
| `subdate`        | the receipt's submit date, `YYMMDDhhmm`    | `extra.receipt.submit_date`   |
| `donedate`       | the receipt's done date, `YYMMDDhhmm`      | `extra.receipt.done_date`     |
| `err`, `text`    | the receipt's error code and text          | `extra.receipt.err`, `text`   |

Jasmin writes `ND` for a receipt field the SMSC did not give: it is left out like a
blank one. `extra.error_code` is `err`.

| `message_status`                                                     | status               |
|----------------------------------------------------------------------|----------------------|
| `ESME_ROK` (the SMSC accepted the send, as Kannel's 8)               | `sent`               |
| `ESME_RTHROTTLED`, `ESME_RMSGQFUL`, `ESME_RSYSERR`, `ESME_RINVSCHED` | `queued`             |
| any other `ESME_R*` (the SMSC refused the send)                      | `rejected`           |
| `DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`, `DELETED`, ...           | the word table above |
| a number                                                             | the `%d` table above |

The four `queued` errors are those Jasmin resubmits by default
(`submit_error_retrial`, jasmin/managers/configs.py): the send may still succeed,
but Jasmin sends no further DLR for it. The source's `status_map` is checked first.
`message_id` is `id`, else your `ref`; `correlation_id` is `ref`; a DLR with
neither is quarantined with reason `no_message_identity:`, as a Kannel one is.
`occurred_at` is `donedate`; level 1 carries no time.

## Times of a receipt

Receipt dates (`done date`, `donedate`) are `YYMMDDhhmm`, `YYMMDDhhmmss` or
`YYYYMMDDhhmmss` (years `YY` are 20YY) in the SMSC's local time, which the
receipt does not name: they are read in the source's `timezone` (default `UTC`;
set your SMSC's zone). A date that is not one of these, or does not exist, gives
no `occurred_at` and stays as text in `extra.receipt`; an unknown `timezone` is
an error.

## Everything else

`extra.format` is `kannel` or `jasmin`. `extra.params` holds every other
parameter by name (always there, maybe empty), except those named like a secret
(`token`, `password`, `key`, ...: left out, as the stored raw callback redacts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson

from dlrhub.event import Event, EventType, JSONValue, RawCallback, Status
from dlrhub.normalizers import kannel
from dlrhub.normalizers.base import NoMessageIdentity, NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import event_id
from dlrhub.redact import is_secret_name

PROVIDER = "smsgateway"
CHANNEL = "sms"

# Jasmin retries a DLR until the answer's body is exactly this (throwers.py).
JASMIN_ACK = b"ACK/Jasmin"

# Default names of the parameters of a Kannel-style dlr-url, and the escape each
# is meant to carry; `SourceOptions.dlr_params` renames them.
DEFAULT_DLR_PARAMS: Mapping[str, str] = {
    "status": "status",
    "phone": "phone",
    "sender": "sender",
    "ref": "ref",
    "message_id": "msgid",
    "smsc_id": "smsc_id",
    "internal_id": "internal_id",
    "smsc_reply": "reply",
    "timestamp": "ts",
}
DLR_ESCAPES: Mapping[str, str] = {
    "status": "%d",
    "phone": "%P",
    "sender": "%p",
    "message_id": "%F",
    "smsc_id": "%i",
    "internal_id": "%I",
    "smsc_reply": "%A",
    "timestamp": "%T",
}

# Jasmin's DLR fields (jasmin/routing/throwers.py, DLRThrower.http_dlr_callback).
JASMIN_FIELDS: tuple[str, ...] = (
    "id",
    "level",
    "message_status",
    "connector",
    "id_smsc",
    "sub",
    "dlvrd",
    "subdate",
    "donedate",
    "err",
    "text",
)
# What says a callback is Jasmin's.
JASMIN_MARKERS: tuple[str, ...] = ("message_status", "level")
# Jasmin's receipt fields, by the names of `kannel.RECEIPT_FIELDS`.
JASMIN_RECEIPT_FIELDS: Mapping[str, str] = {
    "id_smsc": "id",
    "sub": "sub",
    "dlvrd": "dlvrd",
    "subdate": "submit_date",
    "donedate": "done_date",
    "err": "err",
    "text": "text",
}
JASMIN_NOT_DEFINED = "ND"

# Level-1 `message_status` (the submit_sm_resp's command status).
ESME_OK = "ESME_ROK"
# The errors Jasmin resubmits by default (jasmin/managers/configs.py, submit_error_retrial).
JASMIN_RETRIED_ERRORS: frozenset[str] = frozenset(
    {"ESME_RTHROTTLED", "ESME_RMSGQFUL", "ESME_RSYSERR", "ESME_RINVSCHED"}
)


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Turn one gateway DLR into its event, or raise `NormalizeError`."""
    if raw.kind != "dlr":
        raise NormalizeError(
            f"SMS gateway callbacks arrive as 'dlr', not {kannel.excerpt(raw.kind)}."
        )
    params = kannel.parse_query(raw.query, plus_as_space=True)
    if raw.body:
        body = kannel.parse_query(raw.body.decode("utf-8", "replace"), plus_as_space=True)
        for name, value in body.items():
            params.setdefault(name, value)
    names = {**DEFAULT_DLR_PARAMS, **options.dlr_params}
    taken = set(names.values())
    if any(marker in params and marker not in taken for marker in JASMIN_MARKERS):
        event = _jasmin_event(raw, options, params, names)
    else:
        event = _kannel_event(raw, options, params, names)
    try:
        orjson.dumps(event.extra)  # the only part whose depth or text the payload controls
    except orjson.JSONEncodeError as exc:
        raise NormalizeError(f"The callback's data cannot be stored as JSON: {exc}.") from exc
    return [event]


def _kannel_event(
    raw: RawCallback, options: SourceOptions, params: dict[str, str], names: dict[str, str]
) -> Event:
    unsubstituted = [name for name, value in params.items() if kannel.is_unsubstituted(value)]

    def sent(field: str) -> str | None:
        """The parameter of `field` as sent, None when absent, blank or unfilled."""
        value = kannel.present(params.get(names[field]))
        return None if value is None or kannel.is_unsubstituted(value) else value

    def take(field: str) -> str | None:
        return kannel.stripped(sent(field))

    dlr_value = sent("status")
    reply = sent("smsc_reply")
    receipt = kannel.parse_smpp_receipt(reply) if reply else None
    stat = receipt.get("stat") if receipt else None
    if dlr_value is None and stat is None:
        if names["status"] in unsubstituted:
            raise NormalizeError(
                f"The DLR's status parameter {kannel.excerpt(names['status'])} holds "
                f"{kannel.excerpt(params[names['status']].strip())}, an escape nobody filled "
                "in (a test call, or a gateway that does not know Kannel's escapes), and "
                "the SMSC reply has no 'stat:'."
            )
        raise NormalizeError(
            f"The DLR has no status in parameter {kannel.excerpt(names['status'])} and no "
            "'stat:' in an SMSC reply; check the source's dlr_params against the dlr-url."
        )
    ref = take("ref")
    timestamp = take("timestamp")
    occurred_at: datetime | None
    if timestamp:
        occurred_at = kannel.parse_time(timestamp, "UTC", names["timestamp"])
    else:
        occurred_at = _receipt_time(receipt, options)
    message_id = take("message_id") or ref
    if message_id is None:
        raise NoMessageIdentity(
            f"the DLR has no message id in parameter {kannel.excerpt(names['message_id'])} "
            f"(%F) and no ref in parameter {kannel.excerpt(names['ref'])}, so it cannot be "
            "told apart from other DLRs; put msgid=%F and your ref in the dlr-url (or name "
            "the parameters that carry them in the source's dlr_params), then run "
            "'dlrhub quarantine reprocess'."
        )

    extra: dict[str, JSONValue] = {"format": "kannel"}
    for field in ("smsc_id", "internal_id"):
        if value := take(field):
            extra[field] = value
    if reply:
        extra["smsc_reply"] = reply
    if receipt:
        extra["receipt"] = dict(receipt)
    if error_code := _error_code(receipt, reply):
        extra["error_code"] = error_code
    if unsubstituted:
        extra["unsubstituted"] = list(unsubstituted)
    extra["params"] = _other_params(params, set(names.values()))
    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.MESSAGE_STATUS,
        received_at=raw.received_at,
        channel=CHANNEL,
        message_id=message_id,
        correlation_id=ref,
        recipient=take("phone"),
        sender=take("sender"),
        status=_kannel_status(dlr_value, stat, options),
        provider_status=dlr_value if dlr_value is not None else stat,
        occurred_at=occurred_at,
        extra=extra,
    )


def _kannel_status(dlr_value: str | None, stat: str | None, options: SourceOptions) -> Status:
    """The status_map, then the receipt's `stat`, then `%d` (see the module docstring)."""
    for value in (stat, dlr_value):
        if value is not None and (mapped := kannel.mapped_status(value, options)) is not None:
            return mapped
    if stat is not None:
        from_stat = kannel.DLR_WORD_STATUSES.get(stat.strip().lower())
        if from_stat is not None and from_stat is not Status.UNKNOWN:
            return from_stat
    if dlr_value is not None:
        return kannel.dlr_status(dlr_value, options)
    return Status.UNKNOWN


def _jasmin_event(
    raw: RawCallback, options: SourceOptions, params: dict[str, str], names: dict[str, str]
) -> Event:
    def take(name: str) -> str | None:
        value = kannel.stripped(params.get(name))
        return None if value == JASMIN_NOT_DEFINED else value

    message_status = kannel.present(params.get("message_status"))
    if message_status is None:
        raise NormalizeError(
            "The Jasmin DLR has no 'message_status', so it tells nothing to record."
        )
    receipt = {
        ours: value
        for theirs, ours in JASMIN_RECEIPT_FIELDS.items()
        if (value := take(theirs)) is not None
    }
    extra: dict[str, JSONValue] = {"format": "jasmin"}
    if level := take("level"):
        extra["level"] = int(level) if level in {"1", "2", "3"} else level
    if connector := take("connector"):
        extra["connector"] = connector
    if receipt:
        extra["receipt"] = receipt
    if error_code := receipt.get("err"):
        extra["error_code"] = error_code
    yours = {names["ref"], names["phone"], names["sender"]}
    extra["params"] = _other_params(params, {*JASMIN_FIELDS, *yours})

    ref = kannel.stripped(params.get(names["ref"]))
    message_id = take("id") or ref
    if message_id is None:
        raise NoMessageIdentity(
            f"the Jasmin DLR has no 'id' and no ref in parameter {kannel.excerpt(names['ref'])}, "
            "so it cannot be told apart from other DLRs; put your ref in the dlr-url (or name "
            "the parameter that carries it in the source's dlr_params.ref), then run "
            "'dlrhub quarantine reprocess'."
        )
    return Event(
        id=event_id(raw, 0),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.MESSAGE_STATUS,
        received_at=raw.received_at,
        channel=CHANNEL,
        message_id=message_id,
        correlation_id=ref,
        recipient=kannel.stripped(params.get(names["phone"])),
        sender=kannel.stripped(params.get(names["sender"])),
        status=_jasmin_status(message_status, options),
        provider_status=message_status,
        occurred_at=_receipt_time(receipt, options),
        extra=extra,
    )


def _jasmin_status(message_status: str, options: SourceOptions) -> Status:
    mapped = kannel.mapped_status(message_status, options)
    if mapped is not None:
        return mapped
    word = message_status.strip().upper()
    if word == ESME_OK:
        return Status.SENT
    if word in JASMIN_RETRIED_ERRORS:
        return Status.QUEUED
    if word.startswith("ESME_"):
        return Status.REJECTED
    return kannel.dlr_status(message_status, options)


def _error_code(receipt: Mapping[str, str] | None, reply: str | None) -> str | None:
    """The receipt's `err`, or the code of Kannel's `NACK/<code>/...` reply."""
    if receipt is not None:
        return receipt.get("err")
    return kannel.nack_code(reply) if reply else None


def _receipt_time(receipt: Mapping[str, str] | None, options: SourceOptions) -> datetime | None:
    done = receipt.get("done_date") if receipt else None
    return kannel.parse_receipt_date(done, options.timezone) if done else None


def _other_params(params: Mapping[str, str], known: set[str]) -> dict[str, JSONValue]:
    return {
        name: value
        for name, value in params.items()
        if name not in known and not is_secret_name(name)
    }
