"""UVox (`uvox`): answers of `sms-api` (send) and of the SMS status query.

UVox never calls us: dlrhub asks (see providers/uvox-api.txt, "Respuestas de
Sistema en Envío" and "... en verificación de Status"). Every answer is one JSON
object `{version, code, status, resultstring, statusmessage, ...}` whose `code`
is a string with leading zeros (`"005"`; a number is read as one, `5` is
`"005"`). The stored exchange is described in `dlrhub.normalizers.exchange`;
`normalize` dispatches on `raw.kind`.

## `send` — `sms-api?accountnumber&apikey&from&to&text`

One request sends to one number (dlrhub sends one request per recipient: the
document says several are possible but shows only a single `to` and `id` in
the answer). One event:

| `code`        | status     | notes                                            |
|---------------|------------|--------------------------------------------------|
| `005`         | `accepted` | "Message sent successfully"; `message_id` = `id` |
| `009`         | `queued`   | "No Plan or Balance in account (SMS queued)"     |
| anything else | `rejected` | `002`/`014` bad number, `003` empty text, ...    |

(`001`, a bad key, and `500`, an internal problem, never reach the normalizer:
the client raises an authentication error or retries.)

## `poll` — status by `messageId`

The document gives the parameters (`accountnumber, apikey, messageId`) but not
the path; dlrhub's default is `sms-status`, set by the account's `status_path`.

| `code`        | status    | notes                                             |
|---------------|-----------|---------------------------------------------------|
| `011`         | `queued`  | "To send"                                         |
| `012`         | `queued`  | "No plan available to send or Credit": held until |
|               |           | the account has credit; `extra.reason` `no_credit` |
| `013`         | `sent`    | "SMS Sent": the last state UVox reports (it has   |
|               |           | no receipts); the poller stops (`stop_statuses`)  |
| `010`         | `unknown` | "Error validating SMS, please verify ID": unknown |
|               |           | to UVox; `extra.reason` `unknown_id`              |
| anything else | `unknown` | kept in `provider_status`                         |

An account's `status_map` (keys are codes such as `"012"`) overrides both tables.
`provider_status` is the code; `extra` holds `statusmessage` and `resultstring`.
`message_id` is the answer's `id` (send) or the request's `messageId` (poll);
`recipient` is the answer's `to`, else the request's; `sender` is the request's
`from`; `correlation_id` is the send's ref. Events have `provider` `uvox`,
channel `sms`, no `occurred_at` (UVox gives no times), and ids
`uuid7(received_at, f"{raw.dedupe_key()}/0")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.normalizers.exchange import (
    REFS_PARAM,
    checked,
    compact,
    event_id,
    load_json,
    mapped_status,
    request_params,
    split_list,
    text_of,
)

PROVIDER = "uvox"
CHANNEL = "sms"

SEND_ACCEPTED = "005"
SEND_QUEUED = "009"
UNKNOWN_ID = "010"
NO_CREDIT = "012"
SMS_SENT = "013"
BAD_KEY = "001"
INTERNAL_PROBLEM = "500"

SEND_STATUSES: Mapping[str, Status] = {SEND_ACCEPTED: Status.ACCEPTED, SEND_QUEUED: Status.QUEUED}
POLL_STATUSES: Mapping[str, Status] = {
    "011": Status.QUEUED,
    NO_CREDIT: Status.QUEUED,
    SMS_SENT: Status.SENT,
    UNKNOWN_ID: Status.UNKNOWN,
}
REASONS: Mapping[str, str] = {NO_CREDIT: "no_credit", UNKNOWN_ID: "unknown_id"}


def answer_code(answer: Any) -> str | None:
    """The `code` of an answer as three-digit text, or None."""
    if not isinstance(answer, dict):
        return None
    code = answer.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 1000:
        return f"{code:03d}"
    text = text_of(code)
    if text is not None and text.isdigit() and len(text) < 3:
        return text.zfill(3)
    return text


def normalize(raw: RawCallback, options: SourceOptions) -> list[Event]:
    """Turn one UVox answer into one event, or raise `NormalizeError`."""
    if raw.kind not in ("send", "poll"):
        raise NormalizeError(f"UVox answers are 'send' or 'poll', not {raw.kind[:40]!r}.")
    params = request_params(raw)
    answer = load_json(raw, f"UVox {raw.kind} answer")
    if not isinstance(answer, dict):
        raise NormalizeError(f"The UVox {raw.kind} answer is not a JSON object.")
    code = answer_code(answer)
    if code is None:
        raise NormalizeError(f"The UVox {raw.kind} answer has no 'code'.")
    refs = split_list(params.get(REFS_PARAM))
    ref = refs[0] if refs else None
    if raw.kind == "send":
        message_id = text_of(answer.get("id")) if code in SEND_STATUSES else None
        message_id = message_id or ref
        status = mapped_status(code, SEND_STATUSES, options)
        if status is Status.UNKNOWN:  # every other send code is a refusal
            status = Status.REJECTED
    else:
        message_id = params.get("messageId") or text_of(answer.get("id"))
        if not message_id:
            raise NormalizeError("The UVox status query names no 'messageId'.")
        status = mapped_status(code, POLL_STATUSES, options)
    extra = compact(
        {
            "statusmessage": text_of(answer.get("statusmessage")),
            "resultstring": text_of(answer.get("resultstring")),
            "reason": REASONS.get(code) if raw.kind == "poll" else None,
        }
    )
    if status is Status.REJECTED:
        extra["error_code"] = code
        if "statusmessage" in extra:
            extra["error_message"] = extra["statusmessage"]
    return checked(
        [
            Event(
                id=event_id(raw, 0),
                source=raw.source,
                provider=PROVIDER,
                type=EventType.MESSAGE_STATUS,
                received_at=raw.received_at,
                channel=CHANNEL,
                message_id=message_id,
                correlation_id=ref,
                recipient=text_of(answer.get("to")) or params.get("to") or None,
                sender=params.get("from") or None,
                status=status,
                provider_status=code,
                extra=extra,
            )
        ]
    )
