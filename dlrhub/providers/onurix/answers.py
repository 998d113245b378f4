"""Onurix (`onurix`): answers of `send-sms`, `call/send` and `messages-state`.

Onurix never calls us: dlrhub asks (see providers/onurix-api.txt ~l.929). The
stored exchange is described in `dlrhub.normalizers.exchange`; `normalize`
dispatches on `raw.kind`:

- `send`: the answer of `POST /api/v1/send-sms` (`ResponseSMS`, ~l.2406) or
  `POST /api/v1/call/send` (`ResponseCall`, ~l.2434; onurix-call-send.txt),
  one event per recipient: `accepted`, or `rejected` when the item has no `id`,
  when its `status`/`state` maps to a failure below, or when the whole answer
  is an error `{error, msg}` (HTTP 400 or 520). `extra` holds `dispatch_id`
  (the answer's top `id`), `credits`, and `error_code` / `error_message`.
- `poll`: the answer of `GET /api/v1/messages-state?id=` (`ResponseStatusSMS`,
  ~l.2464), **one object or a list of them** ("verifies the state of a group
  of messages"): one event per object with a `state`.

## `state` values

The document never lists them (every example says `"state": "string"`). Onurix
is Colombian; these Spanish and English words are our guesses, compared without
accents, case, spaces or dashes (`No entregado` is `no_entregado`). Anything
else is kept in `provider_status` with status `unknown`, which never overrides
a known status. An account's `status_map` (checked first) corrects the table.

| `state` (compared as said above)                          | status        |
|-----------------------------------------------------------|---------------|
| `aceptado`, `accepted`, `creado`, `recibido`              | `accepted`    |
| `pendiente`, `en_cola`, `encolado`, `programado`,         | `queued`      |
| `en_proceso`, `procesando`, `pending`, `queued`, `scheduled` | `queued`   |
| `enviado`, `enviada`, `sent`, `en_curso`, `llamando`      | `sent`        |
| `entregado`, `entregada`, `delivered`, `completada`       | `delivered`   |
| `contestada`, `answered`, `buzon_de_voz`, `voicemail`     | `delivered`   |
| `no_entregado`, `no_entregada`, `undelivered`             | `undelivered` |
| `no_contestada`, `no_answer`, `ocupado`, `busy`           | `undelivered` |
| `fallido`, `fallida`, `error`, `failed`, `cancelado`, `cancelada` | `failed` |
| `rechazado`, `rechazada`, `rejected`, `invalido`, `bloqueado` | `rejected` |
| `expirado`, `expirada`, `vencido`, `expired`              | `expired`     |
| anything else                                             | `unknown`     |

A call left in voicemail (`buzon_de_voz`) counts as delivered: the recipient got
the message. In a send answer, an item whose status maps to `undelivered`,
`failed`, `rejected` or `expired` is a rejection; any other item with an `id`
was accepted (its word is kept in `provider_status`).

## Fields

`message_id` is the item's `id` (as text: the schema says string, numbers are
accepted), or in a poll the request's `id` when the answer is a single object
without one. `recipient` is `phone` (an integer in `ResponseStatusSMS`), else the
request's phone at the same position. `correlation_id` is the send's ref for that
recipient (`dlrhub_refs`). `channel` is `call` for `call/send` and `sms`
otherwise; a poll answer does not say, so it is `dlrhub_channel` of the request
(default `sms`). `occurred_at` is none: `created` is when the message was
created, not when its state changed (it is kept in `extra.created`). Events have
`provider` `onurix`, `source` the account and ids
`uuid7(received_at, f"{raw.dedupe_key()}/{index}")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import (
    CHANNEL_PARAM,
    REFS_PARAM,
    checked,
    compact,
    event_id,
    load_json,
    mapped_status,
    ref_for,
    request_params,
    split_list,
    text_of,
)

PROVIDER = "onurix"

STATE_STATUSES: Mapping[str, Status] = {
    **dict.fromkeys(("aceptado", "accepted", "creado", "recibido"), Status.ACCEPTED),
    **dict.fromkeys(
        (
            "pendiente",
            "en_cola",
            "encolado",
            "programado",
            "en_proceso",
            "procesando",
            "pending",
            "queued",
            "scheduled",
        ),
        Status.QUEUED,
    ),
    **dict.fromkeys(("enviado", "enviada", "sent", "en_curso", "llamando"), Status.SENT),
    **dict.fromkeys(
        (
            "entregado",
            "entregada",
            "delivered",
            "contestada",
            "answered",
            "completada",
            "buzon_de_voz",
            "voicemail",
        ),
        Status.DELIVERED,
    ),
    **dict.fromkeys(
        (
            "no_entregado",
            "no_entregada",
            "undelivered",
            "no_contestada",
            "no_answer",
            "ocupado",
            "busy",
        ),
        Status.UNDELIVERED,
    ),
    **dict.fromkeys(
        ("fallido", "fallida", "error", "failed", "cancelado", "cancelada"), Status.FAILED
    ),
    **dict.fromkeys(
        ("rechazado", "rechazada", "rejected", "invalido", "bloqueado"), Status.REJECTED
    ),
    **dict.fromkeys(("expirado", "expirada", "vencido", "expired"), Status.EXPIRED),
}

_SEND_FAILURES = frozenset({Status.UNDELIVERED, Status.FAILED, Status.REJECTED, Status.EXPIRED})


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Turn one Onurix answer into events, or raise `NormalizeError`."""
    if raw.kind == "send":
        return checked(normalize_send_answer(raw, options))
    if raw.kind == "poll":
        return checked(normalize_state_answer(raw, options))
    raise NormalizeError(f"Onurix answers are 'send' or 'poll', not {raw.kind[:40]!r}.")


def normalize_send_answer(raw: RawCallback, options: SourceOptions) -> list[Event]:
    params = request_params(raw)
    phones = split_list(params.get("phone"))
    refs = split_list(params.get(REFS_PARAM))
    channel = params.get(CHANNEL_PARAM) or "sms"
    answer = load_json(raw, "Onurix send answer")
    if not isinstance(answer, dict):
        raise NormalizeError("The Onurix send answer is not a JSON object.")
    items = answer.get("data")
    if not isinstance(items, list):
        if "error" in answer or "msg" in answer:
            return _rejected_request(raw, answer, phones, refs, channel)
        raise NormalizeError("The Onurix send answer has neither 'data' nor 'error'.")
    dispatch_id = text_of(answer.get("id"))
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise NormalizeError(f"Item {index} of the Onurix send answer is not an object.")
        message_id = text_of(item.get("id"))
        word = text_of(item.get("status")) or text_of(item.get("state"))
        recipient = text_of(item.get("phone")) or (phones[index] if index < len(phones) else None)
        ref = ref_for(recipient, index, phones, refs)
        mapped = mapped_status(word, STATE_STATUSES, options) if word else Status.UNKNOWN
        status = (
            Status.REJECTED if message_id is None or mapped in _SEND_FAILURES else Status.ACCEPTED
        )
        events.append(
            Event(
                id=event_id(raw, index),
                source=raw.source,
                provider=PROVIDER,
                type=EventType.MESSAGE_STATUS,
                received_at=raw.received_at,
                channel=channel,
                message_id=message_id or ref,
                correlation_id=ref,
                recipient=recipient,
                status=status,
                provider_status=word,
                extra=compact(
                    {"dispatch_id": dispatch_id, "credits": _number(item.get("credits"))}
                ),
            )
        )
    return events


def normalize_state_answer(raw: RawCallback, options: SourceOptions) -> list[Event]:
    params = request_params(raw)
    channel = params.get(CHANNEL_PARAM) or "sms"
    answer = load_json(raw, "Onurix messages-state answer")
    if (
        isinstance(answer, dict)
        and "state" not in answer
        and ("error" in answer or "msg" in answer)
    ):
        code, message = _error_of(answer)
        raise NormalizeError(
            f"Onurix answered the state query with error {code!r}: {(message or '')[:120]!r}."
        )
    items = [answer] if isinstance(answer, dict) else answer
    if not isinstance(items, list):
        raise NormalizeError("The Onurix messages-state answer is not an object or a list.")
    asked = params.get("id")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise NormalizeError(f"Item {index} of the Onurix state answer is not an object.")
        word = text_of(item.get("state"))
        if word is None:
            raise NormalizeError(f"Item {index} of the Onurix state answer has no 'state'.")
        message_id = text_of(item.get("id")) or (asked if len(items) == 1 else None)
        if message_id is None:
            raise NormalizeError(f"Item {index} of the Onurix state answer has no 'id'.")
        events.append(
            Event(
                id=event_id(raw, index),
                source=raw.source,
                provider=PROVIDER,
                type=EventType.MESSAGE_STATUS,
                received_at=raw.received_at,
                channel=channel,
                message_id=message_id,
                recipient=text_of(item.get("phone")),
                status=mapped_status(word, STATE_STATUSES, options),
                provider_status=word,
                extra=compact(
                    {
                        "dispatch_id": text_of(item.get("dispatch_id")),
                        "credits": _number(item.get("credits")),
                        "created": text_of(item.get("created")),
                    }
                ),
            )
        )
    return events


def _rejected_request(
    raw: RawCallback, answer: dict[str, Any], phones: list[str], refs: list[str], channel: str
) -> list[Event]:
    code, message = _error_of(answer)
    recipients: list[str | None] = list(phones) or [None]
    return [
        Event(
            id=event_id(raw, index),
            source=raw.source,
            provider=PROVIDER,
            type=EventType.MESSAGE_STATUS,
            received_at=raw.received_at,
            channel=channel,
            message_id=refs[index] if index < len(refs) else None,
            correlation_id=refs[index] if index < len(refs) else None,
            recipient=recipient,
            status=Status.REJECTED,
            provider_status=code,
            extra=compact({"error_code": code, "error_message": message}),
        )
        for index, recipient in enumerate(recipients)
    ]


def _error_of(answer: dict[str, Any]) -> tuple[str | None, str | None]:
    return text_of(answer.get("error")), text_of(answer.get("msg"))


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value != value:  # NaN cannot be stored as JSON
        return None
    return value
