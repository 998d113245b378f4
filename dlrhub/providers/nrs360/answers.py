"""360NRS (`nrs360`) answers to dlrhub's own requests: send, per-message info, events report.

Callbacks (`events`, `dlr`, `progress`) are read by `dlrhub.normalizers.nrs360`;
`normalize` here reads the exchanges dlrhub stores when it calls 360NRS (see
`dlrhub.normalizers.exchange`) and hands every other kind to that module.

## `send` — `POST /api/rest/sms` (see providers/360nrs-api.txt ~l.20)

`query` is the JSON request as sent (redacted: the source token in each
`notificationUrl` is `[REDACTED]`) plus `dlrhubRefs`, the refs in `to` order.
The answer is 202 (all accepted) or 207 (per recipient) with `result[]`, or
400/401/402 with one `error {code, description}` (codes ~l.9000).

| answer                               | status     | `provider_status`  |
|--------------------------------------|------------|--------------------|
| item `accepted: true`                | `accepted` | `accepted`         |
| item `accepted: false`, `error {code, description}` | `rejected` | the code |
| a whole-request `error`              | `rejected` for every `to` | the code |

`extra` holds `sending_id` and `campaign_id` (of the answer), `parts`,
`scheduledAt` and `expiresAt` (accepted) or `error_code` and `error_message`.
`message_id` is the item's `id`, else the ref. Note: a delivery receipt on the
`notificationUrl` carries the ref, not 360NRS's id, so its event's `message_id`
is the ref (see callbacks.py); the tracking table links both.

## `poll` — `GET /api/rest/sms/<id,id,...>` (~l.305)

`data[]` of `{id, from, to, campaignId, sendingId, isDelivered, events[] {type,
date}}`: one event per `events[]` item, read with the table of 360NRS event
notifications (callbacks.py: `sent`, `delivered`, ... engagement ones without a
status; unknown ones `unknown`), `occurred_at` = `date`.

## `report` — `GET /api/rest/sendings/<id>/reports/events` (~l.8027)

text/csv with a header row: `campaignName, campaignId, sendingId, contactId,
event, phone, email, landline, countryIso, browser, os, url, createdAt`
(text2speech: `callDurationSeconds` instead of `browser, os, url`). One event
per row, with the same event table; `recipient` = `phone`, `occurred_at` =
`createdAt`, the other non-empty columns in `extra` under their own names. The
report has no message id: `message_id` is the request's `dlrhub_message_id`
(the backfill finds it in the tracking table by sending and phone), else none.
The delimiter is `,`, or `;` when the header has `;` and no `,`. UTF-8 (with or
without BOM), else latin-1. Times are read like callbacks' `eventDate` (same
forms, same `timezone` option), so a backfilled event and a callback of the same
event carry the same `occurred_at`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from dlrhub.event import Event, EventType, JSONValue, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import (
    CHANNEL_PARAM,
    MESSAGE_ID_PARAM,
    checked,
    compact,
    event_id,
    load_json,
    request_params,
    text_of,
)
from dlrhub.providers.nrs360 import callbacks as nrs360

PROVIDER = nrs360.PROVIDER
REFS_KEY = "dlrhubRefs"
REPORT_COLUMNS = (
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
    "callDurationSeconds",
    "createdAt",
)
_MAX_ROWS = 1_000_000


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Every 360NRS kind: dlrhub's own exchanges here, callbacks in callbacks.py."""
    if raw.kind == "send":
        return checked(normalize_send_answer(raw, options))
    if raw.kind == "poll":
        return checked(normalize_message_info(raw, options))
    if raw.kind == "report":
        return checked(normalize_events_report(raw, options))
    return nrs360.normalize(raw, options)


def normalize_send_answer(raw: RawCallback, options: SourceOptions) -> list[Event]:
    try:
        request = orjson.loads(raw.query)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError(f"The stored 360NRS send request is not JSON: {exc}.") from exc
    if not isinstance(request, dict):
        raise NormalizeError("The stored 360NRS send request is not a JSON object.")
    recipients = [text_of(value) for value in _list(request.get("to"))]
    refs = [text_of(value) for value in _list(request.get(REFS_KEY))]
    sender = text_of(request.get("from"))
    answer = load_json(raw, "360NRS send answer")
    if not isinstance(answer, dict):
        raise NormalizeError("The 360NRS send answer is not a JSON object.")
    results = answer.get("result")
    base_extra = compact(
        {
            "sending_id": text_of(answer.get("sendingId")),
            "campaign_id": text_of(answer.get("campaignId")),
        }
    )
    events = []
    if not isinstance(results, list):
        error = answer.get("error")
        if not isinstance(error, dict):
            raise NormalizeError("The 360NRS send answer has neither 'result' nor 'error'.")
        code, description = text_of(error.get("code")), text_of(error.get("description"))
        for index, recipient in enumerate(recipients or [None]):
            ref = refs[index] if index < len(refs) else None
            events.append(
                _send_event(
                    raw,
                    index,
                    message_id=ref,
                    ref=ref,
                    recipient=recipient,
                    sender=sender,
                    status=Status.REJECTED,
                    provider_status=code,
                    extra={
                        **base_extra,
                        **compact({"error_code": code, "error_message": description}),
                    },
                )
            )
        return events
    for index, item in enumerate(results):
        if not isinstance(item, dict):
            raise NormalizeError(f"Item {index} of the 360NRS send answer is not an object.")
        recipient = text_of(item.get("to"))
        ref = _ref_of(recipient, index, recipients, refs)
        extra: dict[str, JSONValue] = dict(base_extra)
        if item.get("accepted") is True:
            status, provider_status = Status.ACCEPTED, "accepted"
            parts = item.get("parts")
            if isinstance(parts, int) and not isinstance(parts, bool):
                extra["parts"] = parts
            for name in ("scheduledAt", "expiresAt"):
                if (value := text_of(item.get(name))) is not None:
                    extra[name] = value
        else:
            error = item.get("error")
            error = error if isinstance(error, dict) else {}
            code, description = text_of(error.get("code")), text_of(error.get("description"))
            status, provider_status = Status.REJECTED, code or "rejected"
            extra.update(compact({"error_code": code, "error_message": description}))
        events.append(
            _send_event(
                raw,
                index,
                message_id=text_of(item.get("id")) or ref,
                ref=ref,
                recipient=recipient,
                sender=sender,
                status=status,
                provider_status=provider_status,
                extra=extra,
            )
        )
    return events


def normalize_message_info(raw: RawCallback, options: SourceOptions) -> list[Event]:
    answer = load_json(raw, "360NRS message info answer")
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise NormalizeError("The 360NRS message info answer has no 'data' list.")
    events: list[Event] = []
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise NormalizeError(f"Item {position} of the 360NRS message info is not an object.")
        message_id = text_of(item.get("id"))
        if message_id is None:
            raise NormalizeError(f"Item {position} of the 360NRS message info has no 'id'.")
        extra = compact(
            {
                "campaign_id": text_of(item.get("campaignId")),
                "sending_id": text_of(item.get("sendingId")),
                "is_delivered": item.get("isDelivered")
                if isinstance(item.get("isDelivered"), bool)
                else None,
            }
        )
        for entry in _list(item.get("events")):
            if not isinstance(entry, dict):
                raise NormalizeError(f"An event of message {message_id[:40]!r} is not an object.")
            word = text_of(entry.get("type"))
            if word is None:
                raise NormalizeError(f"An event of message {message_id[:40]!r} has no 'type'.")
            date = text_of(entry.get("date"))
            event_type, status = _event_status(word, options)
            events.append(
                Event(
                    id=event_id(raw, len(events)),
                    source=raw.source,
                    provider=PROVIDER,
                    type=event_type,
                    received_at=raw.received_at,
                    channel="sms",
                    message_id=message_id,
                    recipient=text_of(item.get("to")),
                    sender=text_of(item.get("from")),
                    status=status,
                    provider_status=word,
                    occurred_at=_time(date, options, "events[].date") if date else None,
                    extra=extra,
                )
            )
    return events


def normalize_events_report(raw: RawCallback, options: SourceOptions) -> list[Event]:
    params = request_params(raw)
    message_id = params.get(MESSAGE_ID_PARAM) or None
    channel = params.get(CHANNEL_PARAM) or "sms"
    events = []
    for index, row in enumerate(report_rows(raw.body)):
        word = (row.get("event") or "").strip()
        if not word:
            raise NormalizeError(f"Row {index + 1} of the events report has no 'event'.")
        created = (row.get("createdAt") or "").strip()
        event_type, status = _event_status(word, options)
        extra: dict[str, JSONValue] = {
            name: value.strip()
            for name, value in row.items()
            if name not in ("event", "phone", "createdAt") and value.strip()
        }
        events.append(
            Event(
                id=event_id(raw, index),
                source=raw.source,
                provider=PROVIDER,
                type=event_type,
                received_at=raw.received_at,
                channel=channel,
                message_id=message_id,
                recipient=(row.get("phone") or "").strip() or None,
                status=status,
                provider_status=word,
                occurred_at=_time(created, options, "createdAt") if created else None,
                extra=extra,
            )
        )
    return events


def report_rows(body: bytes) -> list[dict[str, str]]:
    """The rows of an events report, each a dict by header name."""
    text = _decode(body)
    lines = text.splitlines()
    header = lines[0] if lines else ""
    delimiter = ";" if ";" in header and "," not in header else ","
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        names = next(reader, None)
        if names is None:
            return []
        names = [name.strip().lstrip("\ufeff") for name in names]
        if "event" not in names:
            raise NormalizeError("The events report has no 'event' column in its header.")
        rows: list[dict[str, str]] = []
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            if len(rows) >= _MAX_ROWS:
                raise NormalizeError("The events report has more rows than dlrhub reads.")
            rows.append(dict(zip(names, values, strict=False)))
    except csv.Error as exc:
        raise NormalizeError(f"The events report is not valid CSV: {exc}.") from exc
    return rows


def report_row_csv(row: Mapping[str, str]) -> bytes:
    """One row as a CSV text with its own header: the body stored for a backfilled row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(row))
    writer.writerow(list(row.values()))
    return out.getvalue().encode("utf-8")


def _event_status(word: str, options: SourceOptions) -> tuple[EventType, Status | None]:
    name = word.strip().lower()
    for key, mapped in options.status_map.items():
        if key.strip().lower() == name:
            try:
                status = Status(mapped)
            except ValueError as exc:
                raise NormalizeError(
                    f"The status_map value {str(mapped)[:40]!r} is not a status."
                ) from exc
            kind = (
                EventType.MESSAGE_ENGAGEMENT
                if name in nrs360.ENGAGEMENT_EVENTS
                else EventType.MESSAGE_STATUS
            )
            return kind, status
    if name in nrs360.ENGAGEMENT_EVENTS:
        return EventType.MESSAGE_ENGAGEMENT, None
    return EventType.MESSAGE_STATUS, nrs360.EVENT_STATUSES.get(name, Status.UNKNOWN)


def _time(text: str, options: SourceOptions, field: str) -> datetime:
    # The callbacks' reader, so that a report row and a callback of the same
    # event get the same time (the backfill deduplicates on it).
    return nrs360._parse_time(text, options.timezone, field)


def _send_event(
    raw: RawCallback,
    index: int,
    *,
    message_id: str | None,
    ref: str | None,
    recipient: str | None,
    sender: str | None,
    status: Status,
    provider_status: str | None,
    extra: dict[str, JSONValue],
) -> Event:
    return Event(
        id=event_id(raw, index),
        source=raw.source,
        provider=PROVIDER,
        type=EventType.MESSAGE_STATUS,
        received_at=raw.received_at,
        channel="sms",
        message_id=message_id,
        correlation_id=ref,
        recipient=recipient,
        sender=sender,
        status=status,
        provider_status=provider_status,
        extra=extra,
    )


def _ref_of(
    recipient: str | None, index: int, recipients: list[str | None], refs: list[str | None]
) -> str | None:
    if recipient is not None:
        for position, candidate in enumerate(recipients):
            if candidate == recipient and position < len(refs):
                return refs[position]
    return refs[index] if index < len(refs) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")
