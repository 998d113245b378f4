"""The `[[sinks]]` configuration section (filled in by the fan-out work)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dlrhub.settings_values import ConfigError


@dataclass(frozen=True, slots=True)
class SinkConfig:
    name: str
    kind: str


def parse_sinks(document: Mapping[str, Any]) -> tuple[SinkConfig, ...]:
    if document.get("sinks"):
        raise ConfigError("sinks", "sinks are not supported by this version yet")
    return ()
