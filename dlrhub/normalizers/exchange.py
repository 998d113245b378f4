"""Reading the exchanges dlrhub has with provider APIs (sends, polls, reports).

When dlrhub itself calls a provider, the exchange is stored in the event log as a
`RawCallback` too, so the log keeps an audit of what the provider said:

| field          | holds                                                              |
|----------------|--------------------------------------------------------------------|
| `source`       | the account name (`[[accounts]] name`)                             |
| `kind`         | `send`, `poll` or `report`                                         |
| `method`       | the HTTP method of the request                                     |
| `query`        | the request's parameters, redacted: a form-encoded string (a JSON  |
|                | text for 360NRS sends), plus dlrhub's own `dlrhub_*` parameters,   |
|                | which are never sent to the provider                               |
| `content_type` | the answer's Content-Type                                          |
| `body`         | the answer, byte for byte                                          |

dlrhub's own parameters: `dlrhub_refs` (the per-recipient correlation refs of a
send, comma separated, in recipient order), `dlrhub_channel` (`sms` or `call`)
and `dlrhub_message_id` (the message a report row belongs to).

This module holds the small readers every outbound normalizer shares; it does
no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from dlrhub.event import Event, JSONValue, RawCallback, Status
from dlrhub.ids import uuid7
from dlrhub.normalizers.base import NormalizeError, SourceOptions

# The kinds of a stored exchange (`RawCallback.kind`); any other kind is a callback route.
EXCHANGE_KINDS = frozenset({"send", "poll", "report"})
REFS_PARAM = "dlrhub_refs"
CHANNEL_PARAM = "dlrhub_channel"
MESSAGE_ID_PARAM = "dlrhub_message_id"

_SEPARATORS = re.compile(r"[\s_\-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def request_params(raw: RawCallback) -> dict[str, str]:
    """The stored request parameters (first value wins), percent-decoded."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw.query, keep_blank_values=True, errors="replace"):
        params.setdefault(_clean(name), _clean(value))
    return params


def split_list(value: str | None) -> list[str]:
    """A comma-separated list of the request (`phone=1,2`), blanks dropped."""
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def load_json(raw: RawCallback, what: str) -> Any:
    try:
        return orjson.loads(raw.body)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError(f"The {what} is not valid JSON: {exc}.") from exc


def status_key(text: str) -> str:
    """A provider word made comparable: no accents, lower case, `_` for spaces and dashes."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _SEPARATORS.sub("_", plain.strip().lower()).strip("_")


def mapped_status(
    provider_status: str, table: Mapping[str, Status], options: SourceOptions
) -> Status:
    """`options.status_map` first (keys compared with `status_key`), then `table`."""
    key = status_key(provider_status)
    for name, status in options.status_map.items():
        if status_key(name) == key:
            try:
                return Status(status)
            except ValueError as exc:
                raise NormalizeError(
                    f"The status_map sends {name[:40]!r} to {str(status)[:40]!r}, "
                    "which is not a status."
                ) from exc
    return table.get(key, Status.UNKNOWN)


def text_of(value: Any) -> str | None:
    """A JSON scalar as text (numbers too), or None when absent or blank."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() and abs(value) < 2**63 else value
    text = _clean(str(value)).strip()
    return text or None


def event_id(raw: RawCallback, index: int) -> str:
    return uuid7(raw.received_at, f"{raw.dedupe_key()}/{index}".encode())


def checked(events: list[Event]) -> list[Event]:
    """Refuse events the store could not write as JSON."""
    for event in events:
        try:
            orjson.dumps(event.to_dict())
        except orjson.JSONEncodeError as exc:
            raise NormalizeError(f"The answer's data cannot be stored as JSON: {exc}.") from exc
    return events


def digits(phone: str) -> str:
    """A phone number reduced to its digits, to match a recipient across formats."""
    return "".join(char for char in phone if char.isdigit())


def ref_for(
    recipient: str | None, index: int, recipients: list[str], refs: list[str]
) -> str | None:
    """The ref of a recipient: by its number when it is in the request, else by position."""
    if recipient is not None:
        wanted = digits(recipient)
        for position, candidate in enumerate(recipients):
            if wanted and digits(candidate) == wanted and position < len(refs):
                return refs[position]
    return refs[index] if index < len(refs) else None


def compact(extra: dict[str, JSONValue]) -> dict[str, JSONValue]:
    return {key: value for key, value in extra.items() if value is not None}


def _clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)
