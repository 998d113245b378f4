"""What the receiver hands a normalizer, what a normalizer may raise, and its options.

Normalizers are pure functions `normalize(raw, options) -> list[Event]`: no I/O,
no clock, no globals. Anything they cannot make sense of is a `NormalizeError`,
which the receiver turns into a quarantine entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dlrhub.event import Event, Status


class NormalizeError(ValueError):
    """The payload cannot be turned into events; the message says why."""


@dataclass(slots=True)
class RawCallback:
    """One HTTP callback as received, with secrets already removed.

    `kind` is the route it came in on (`events`, `dlr`, `progress`); `query` is
    the raw query string and `body` the raw body, both redacted. Treat it as
    immutable: it is not frozen only because a frozen dataclass costs several
    times more to build, and the receiver builds one per callback.
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

    _dedupe_key: str = field(init=False, repr=False, compare=False, default="")

    def dedupe_key(self) -> str:
        """Identity of the callback: a provider's retry of it hashes the same."""
        if not self._dedupe_key:
            parts = "\x00".join((self.source, self.kind, self.method, self.query, ""))
            digest = hashlib.sha256(parts.encode("utf-8", "surrogatepass") + self.body)
            self._dedupe_key = digest.hexdigest()
        return self._dedupe_key


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """Per-source choices where provider documents are silent (see README).

    `dlr_params` renames receipt parameters; a name it does not give keeps the
    provider's default (each provider's `SourceSpec.dlr_params`).
    """

    dlr_params: Mapping[str, str] = field(default_factory=dict)
    status_map: Mapping[str, Status] = field(default_factory=dict)
    timezone: str = "UTC"
    dlr_plus_as_space: bool = False


class Normalizer(Protocol):
    def __call__(self, raw: RawCallback, options: SourceOptions) -> list[Event]: ...
