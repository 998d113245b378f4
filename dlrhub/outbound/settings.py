"""The `[[accounts]]` and `[poller]` configuration sections (filled in by the outbound work)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlrhub.settings_values import ConfigError


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    """Provider accounts to send and poll through, and the poller's schedule."""


def parse_outbound(document: Mapping[str, Any]) -> OutboundConfig:
    for key in ("accounts", "poller"):
        if document.get(key):
            raise ConfigError(key, f"{key} are not supported by this version yet")
    return OutboundConfig()
