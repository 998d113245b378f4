"""Conectaline (`conectaline`): answers of `push/simple` and `push/multiple`.

Conectaline has no delivery receipts and no status endpoint
(see providers/conectaline-api.txt ~l.160 and ~l.573): a send yields only an
`accepted` or a `rejected` event per recipient, and nothing is polled. The
stored exchange is described in `dlrhub.normalizers.exchange`; only
`raw.kind == "send"` is read.

| answer                           | status     |
|----------------------------------|------------|
| has `data` (any value)           | `accepted` |
| has `error` (`{message}` or text) | `rejected`, `extra.error_message` |
| neither                          | `NormalizeError` |

The document never shows what `data` holds. dlrhub keeps it whole in
`extra.data` of every event of the send and does not look for ids in it, so
`message_id` is dlrhub's own ref for the recipient (`dlrhub_refs`), which is
also the `correlation_id`. Recipients come from the request: `numbers` (comma
separated, `push/simple`) or `messages` (a JSON list of `{number, message}`,
`push/multiple`, at most 1000 per request). Events have `provider`
`conectaline`, channel `sms`, no `occurred_at`, and ids
`uuid7(received_at, f"{raw.dedupe_key()}/{index}")`.
"""

from __future__ import annotations

from typing import Any

import orjson

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import (
    REFS_PARAM,
    checked,
    compact,
    event_id,
    load_json,
    request_params,
    split_list,
    text_of,
)

PROVIDER = "conectaline"
CHANNEL = "sms"


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Turn one Conectaline send answer into events, or raise `NormalizeError`."""
    if raw.kind != "send":
        raise NormalizeError(
            f"Conectaline has no status API: only 'send' answers, not {raw.kind[:40]!r}."
        )
    params = request_params(raw)
    recipients = _recipients(params)
    refs = split_list(params.get(REFS_PARAM))
    answer = load_json(raw, "Conectaline answer")
    if not isinstance(answer, dict):
        raise NormalizeError("The Conectaline answer is not a JSON object.")
    extra: dict[str, Any]
    if "data" in answer:
        status = Status.ACCEPTED
        extra = {"data": answer["data"]}
    elif "error" in answer:
        status = Status.REJECTED
        error = answer["error"]
        message = text_of(error.get("message")) if isinstance(error, dict) else text_of(error)
        extra = compact({"error_message": message})
    else:
        raise NormalizeError("The Conectaline answer has neither 'data' nor 'error'.")
    return checked(
        [
            Event(
                id=event_id(raw, index),
                source=raw.source,
                provider=PROVIDER,
                type=EventType.MESSAGE_STATUS,
                received_at=raw.received_at,
                channel=CHANNEL,
                message_id=refs[index] if index < len(refs) else None,
                correlation_id=refs[index] if index < len(refs) else None,
                recipient=recipient,
                status=status,
                provider_status="data" if status is Status.ACCEPTED else "error",
                extra=extra,
            )
            for index, recipient in enumerate(recipients or [None])
        ]
    )


def _recipients(params: dict[str, str]) -> list[str | None]:
    if "messages" in params:
        try:
            messages = orjson.loads(params["messages"])
        except orjson.JSONDecodeError as exc:
            raise NormalizeError(f"The request's 'messages' is not valid JSON: {exc}.") from exc
        if not isinstance(messages, list):
            raise NormalizeError("The request's 'messages' is not a JSON list.")
        return [
            text_of(item.get("number")) if isinstance(item, dict) else None for item in messages
        ]
    return list(split_list(params.get("numbers")))
