"""What the receiver hands a normalizer, what a normalizer may raise, and its options.

`RawCallback` lives beside `Event` (`dlrhub.event`), so the store needs no normalizer.

Normalizers are pure functions `normalize(raw, options) -> list[Event]`: no I/O,
no clock, no globals. Anything they cannot make sense of is a `NormalizeError`,
which the receiver turns into a quarantine entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dlrhub.event import Event, RawCallback, Status


class NormalizeError(ValueError):
    """The payload cannot be turned into events; the message says why."""


NO_MESSAGE_IDENTITY = "no_message_identity"


class NoMessageIdentity(NormalizeError):
    """The receipt names no message (no id, no ref of yours).

    Stored, it would carry `message_id: null` and could not be told apart from
    every other such receipt; quarantined, it waits for a fixed `dlr_params` and
    `reprocess`. The message (the quarantine reason) starts with
    `no_message_identity:` so that an operator can grep for it.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"{NO_MESSAGE_IDENTITY}: {detail}")


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
