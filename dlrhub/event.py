"""The one event type every provider callback and poll answer is turned into.

Statuses form a lattice (see `Status.rank`): accepted < queued < sent < terminal
(delivered, undelivered, failed, rejected, expired). `unknown` ranks below all
of them, so it never overrides a known status. A message's stored state moves
only up the lattice, whatever order callbacks arrive in; every event is still
kept in the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

import msgspec
import orjson

from dlrhub.redact import REDACTED, redact_form, redact_json_body, redact_query

JSONValue = Any  # orjson-serializable: None, bool, int, float, str, list, dict


class Status(StrEnum):
    """Delivery status of a message, in the common vocabulary."""

    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def rank(self) -> int:
        """Position in the lattice; a higher rank replaces a lower one."""
        return _RANKS[self]

    @property
    def is_final(self) -> bool:
        return self.rank == TERMINAL_RANK


TERMINAL_RANK = 4
_RANKS: dict[Status, int] = {
    Status.UNKNOWN: 0,
    Status.ACCEPTED: 1,
    Status.QUEUED: 2,
    Status.SENT: 3,
    Status.DELIVERED: TERMINAL_RANK,
    Status.UNDELIVERED: TERMINAL_RANK,
    Status.FAILED: TERMINAL_RANK,
    Status.REJECTED: TERMINAL_RANK,
    Status.EXPIRED: TERMINAL_RANK,
}


class EventType(StrEnum):
    """What an event tells: a delivery status, an engagement, a job's progress, or one of
    dlrhub's own alerts opening or resolving (source and provider `dlrhub`, docs/alerts.md)."""

    MESSAGE_STATUS = "message.status"
    MESSAGE_ENGAGEMENT = "message.engagement"
    JOB_PROGRESS = "job.progress"
    ALERT = "dlrhub.alert"


class Event(msgspec.Struct, frozen=True):
    """One normalized event. `seq` is 0 until the store assigns the log order.

    A msgspec `Struct` rather than a dataclass: every callback builds one and the
    store copies and encodes it, and a Struct does each several times faster (C).
    """

    id: str
    source: str
    provider: str
    type: EventType
    received_at: datetime
    channel: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    recipient: str | None = None
    sender: str | None = None
    status: Status | None = None
    provider_status: str | None = None
    occurred_at: datetime | None = None
    extra: dict[str, JSONValue] = msgspec.field(default_factory=dict)
    seq: int = 0

    def with_seq(self, seq: int) -> Event:
        return msgspec.structs.replace(self, seq=seq)

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by the query API, the CLI and the sinks."""
        return {
            "id": self.id,
            "seq": self.seq,
            "source": self.source,
            "provider": self.provider,
            "channel": self.channel,
            "type": self.type.value,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "recipient": self.recipient,
            "sender": self.sender,
            "status": self.status.value if self.status is not None else None,
            "provider_status": self.provider_status,
            "occurred_at": format_time(self.occurred_at) if self.occurred_at else None,
            "received_at": format_time(self.received_at),
            "extra": self.extra,
        }

    def to_json(self) -> bytes:
        """The JSON that sinks deliver: `to_dict`, times at fixed width."""
        return orjson.dumps(self.to_dict())

    def to_document(self) -> bytes:
        """The stored form: every field, times in RFC 3339; `from_json` reads it back."""
        return _DOCUMENT_ENCODER.encode(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """An event from `to_json` or `to_document` output."""
        try:
            return _DECODER.decode(raw)
        except msgspec.DecodeError as error:  # ValidationError is a DecodeError
            raise ValueError(f"not an event: {error}") from error

    @property
    def ordering_time(self) -> datetime:
        """When it happened, or when we heard of it if the provider did not say."""
        return self.occurred_at or self.received_at


_DOCUMENT_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Event)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: fixed width, so text order is time order."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def epoch_micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# The query parameter that carries a source token (dlrhub/providers/token.py): the
# dedupe key leaves its value out, and no configuration keeps it from redaction.
CREDENTIAL_PARAMETER = "token"


@dataclass(slots=True)
class RawCallback:
    """One HTTP callback as received.

    `kind` is the route it came in on (`events`, `dlr`, `progress`); `query` is
    the raw query string and `body` the raw body. The receiver builds it as
    received, normalizes it and computes its dedupe key, then stores
    `redacted()`, its copy without secrets: what is stored, logged or sent on is
    always redacted, what identifies a callback never is. Treat it as immutable: it
    is not frozen only because a frozen dataclass costs several times more to
    build, and the receiver builds one per callback.
    """

    source: str
    provider: str
    kind: str
    method: str
    query: str
    content_type: str
    body: bytes
    received_at: datetime
    remote_addr: str | None = None
    # The HTTP request's id (dlrhub/receiver/request_id.py): put in its events' `extra`,
    # never part of the dedupe key, not stored with the raw callback.
    request_id: str | None = None

    _dedupe_key: str = field(init=False, repr=False, compare=False, default="")

    def dedupe_key(self) -> str:
        """Identity of the callback: a provider's retry of it hashes the same.

        Everything the provider sent counts but its authentication, so that a retry
        sent after the source's token changed is still a retry: the value of the
        `token` parameter is left out (as `[REDACTED]`, as keys were written before
        redaction moved after them, so that retries across the upgrade still match).
        HTTP Basic credentials and signature headers are not part of a callback.
        """
        if not self._dedupe_key:
            query = _without_credential(self.query)
            parts = "\x00".join((self.source, self.kind, self.method, query, ""))
            digest = hashlib.sha256(parts.encode("utf-8", "surrogatepass") + self.body)
            self._dedupe_key = digest.hexdigest()
        return self._dedupe_key

    def redacted(self, keep: Collection[str] = frozenset()) -> RawCallback:
        """This callback without its secrets (see dlrhub/redact.py), under the same dedupe key.

        `keep`: parameter names the configuration gives, never redacted. `self` when
        there is nothing to redact.
        """
        keep = keep if CREDENTIAL_PARAMETER not in keep else set(keep) - {CREDENTIAL_PARAMETER}
        query = redact_query(self.query, keep)
        body = _redact_body(self.body, keep)
        if query == self.query and body == self.body:
            return self
        copy = RawCallback(
            self.source,
            self.provider,
            self.kind,
            self.method,
            query,
            self.content_type,
            body,
            self.received_at,
            self.remote_addr,
            self.request_id,
        )
        copy._dedupe_key = self.dedupe_key()
        return copy


def _without_credential(query: str) -> str:
    """`query` with the value of each `token` parameter hidden, as the token check finds them."""
    if CREDENTIAL_PARAMETER not in query and "%" not in query:
        return query  # the cheap common miss: no parameter can decode to `token`
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, separator, _ = part.partition("=")
        if separator and (
            name == CREDENTIAL_PARAMETER
            or ("%" in name and unquote_plus(name) == CREDENTIAL_PARAMETER)
        ):
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def _redact_body(body: bytes, keep: Collection[str]) -> bytes:
    """A body redacted as what it looks like: a JSON object or array, else a form."""
    if not body:
        return body
    first = body[:1]
    if first.isspace():
        first = body.lstrip()[:1]
    if first in (b"{", b"["):
        return redact_json_body(body, keep)
    return redact_form(body, keep)
