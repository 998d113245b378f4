"""The `[[sinks]]` configuration section.

Keys every sink has (kind-specific keys are listed in each kind's module and
in docs/sinks.md):

| key             | default       | meaning                                                   |
|-----------------|---------------|-----------------------------------------------------------|
| `name`          | (required)    | lower-case letters, digits, `-`, `_`; the cursor's name   |
| `kind`          | (required)    | webhook, jsonl, redis, nats, rabbitmq, stdout             |
| `filter`        | everything    | table of lists: sources, providers, types, statuses       |
| `batch_size`    | per kind      | events per delivery (webhook: 1 = one event per POST)      |
| `max_in_flight` | per kind      | deliveries at once; events of one message stay in order  |
| `timeout`       | `"10s"`       | one delivery attempt                                      |
| `start`         | `"beginning"` | where a new sink starts: `beginning` or `end` of the log  |
| `retry`         | see below     | initial, max, factor, max_attempts, max_age               |

Durations are seconds (`2`, `0.5`) or text with a unit (`"500ms"`, `"30s"`,
`"5m"`, `"24h"`, `"7d"`). Retry defaults: initial 0.5s, max 60s, factor 2,
max_attempts 10, max_age 24h (0 = no limit). Attempts and age count only
failures the sink answered (see `dlrhub/sinks/base.py`); a sink that is down
is retried for as long as it is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dlrhub.event import Event, EventType, Status
from dlrhub.providers import ALIASES
from dlrhub.settings_values import (
    ConfigError,
    read_choice,
    read_duration,
    read_list,
    read_name,
    read_named_tables,
    read_number,
    read_positive_int,
    read_table,
    read_text,
    reject_unknown,
    value_at,
)
from dlrhub.sinks.base import SinkOptions

COMMON_KEYS = frozenset(
    {"name", "kind", "filter", "batch_size", "max_in_flight", "timeout", "start", "retry"}
)
MAX_BATCH_SIZE = 10_000
MAX_IN_FLIGHT = 256

StartAt = Literal["beginning", "end"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: float = 0.5
    max: float = 60.0
    factor: float = 2.0
    max_attempts: int = 10
    max_age: float = 86_400.0  # seconds since the first failed attempt; 0 = no limit


@dataclass(frozen=True, slots=True)
class SinkFilter:
    """Which events a sink gets; an empty set lets everything through."""

    sources: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    types: frozenset[EventType] = frozenset()
    statuses: frozenset[Status] = frozenset()

    def matches(self, event: Event) -> bool:
        return (
            (not self.sources or event.source in self.sources)
            and (not self.providers or event.provider in self.providers)
            and (not self.types or event.type in self.types)
            and (not self.statuses or (event.status is not None and event.status in self.statuses))
        )


@dataclass(frozen=True, slots=True)
class SinkConfig:
    name: str
    kind: str
    options: SinkOptions
    filter: SinkFilter = field(default_factory=SinkFilter)
    batch_size: int = 100
    max_in_flight: int = 1
    timeout: float = 10.0
    start: StartAt = "beginning"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def secrets(self) -> tuple[str, ...]:
        return self.options.secrets()


def parse_sinks(document: Mapping[str, Any]) -> tuple[SinkConfig, ...]:
    return read_named_tables(document, "sinks", "sink", parse_sink)


def parse_sink(path: str, item: Any) -> SinkConfig:
    from dlrhub.sinks.kinds import KINDS

    table = read_table(path, item)
    name = read_name(path, table)
    kind = read_choice(path, table, "kind", KINDS, "a sink kind")
    reject_unknown(path, table, set(COMMON_KEYS | kind.keys))
    start = value_at(table, "start", f"{path}.start", read_text, "beginning").lower()
    if start not in ("beginning", "end"):
        raise ConfigError(f"{path}.start", f"{start!r} must be 'beginning' or 'end'")
    batch_size = value_at(
        table, "batch_size", f"{path}.batch_size", read_positive_int, kind.batch_size
    )
    if batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"{path}.batch_size", f"must be at most {MAX_BATCH_SIZE}")
    max_in_flight = value_at(
        table, "max_in_flight", f"{path}.max_in_flight", read_positive_int, kind.max_in_flight
    )
    if max_in_flight > MAX_IN_FLIGHT:
        raise ConfigError(f"{path}.max_in_flight", f"must be at most {MAX_IN_FLIGHT}")
    timeout = value_at(table, "timeout", f"{path}.timeout", read_duration, 10.0)
    if timeout <= 0:
        raise ConfigError(f"{path}.timeout", "must be greater than 0")
    kind_table = {key: value for key, value in table.items() if key in kind.keys}
    return SinkConfig(
        name=name,
        kind=kind.name,
        options=kind.parse_options(path, kind_table),
        filter=_filter(f"{path}.filter", table.get("filter", {})),
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        timeout=timeout,
        start="end" if start == "end" else "beginning",
        retry=_retry(f"{path}.retry", table.get("retry", {})),
    )


def _filter(path: str, value: Any) -> SinkFilter:
    table = read_table(path, value)
    reject_unknown(path, table, {"sources", "providers", "types", "statuses"})

    def texts(key: str) -> list[str]:
        return [
            read_text(f"{path}.{key}[{index}]", item)
            for index, item in enumerate(read_list(f"{path}.{key}", table.get(key, [])))
        ]

    providers = set()
    for index, text in enumerate(texts("providers")):
        provider = ALIASES.get(text.lower())
        if provider is None:
            known = ", ".join(sorted(ALIASES))
            raise ConfigError(
                f"{path}.providers[{index}]", f"{text!r} is not a known provider ({known})"
            )
        providers.add(provider)
    types = set()
    for index, text in enumerate(texts("types")):
        try:
            types.add(EventType(text))
        except ValueError:
            known = ", ".join(item.value for item in EventType)
            raise ConfigError(
                f"{path}.types[{index}]", f"{text!r} is not an event type ({known})"
            ) from None
    statuses = set()
    for index, text in enumerate(texts("statuses")):
        try:
            statuses.add(Status(text.lower()))
        except ValueError:
            known = ", ".join(item.value for item in Status)
            raise ConfigError(
                f"{path}.statuses[{index}]", f"{text!r} is not a status ({known})"
            ) from None
    return SinkFilter(
        sources=frozenset(texts("sources")),
        providers=frozenset(providers),
        types=frozenset(types),
        statuses=frozenset(statuses),
    )


def _retry(path: str, value: Any) -> RetryPolicy:
    table = read_table(path, value)
    reject_unknown(path, table, {"initial", "max", "factor", "max_attempts", "max_age"})
    defaults = RetryPolicy()
    initial = value_at(table, "initial", f"{path}.initial", read_duration, defaults.initial)
    maximum = value_at(table, "max", f"{path}.max", read_duration, defaults.max)
    factor = value_at(table, "factor", f"{path}.factor", read_number, defaults.factor)
    if initial <= 0:
        raise ConfigError(f"{path}.initial", "must be greater than 0")
    if maximum < initial:
        raise ConfigError(f"{path}.max", "must not be less than retry.initial")
    if factor < 1:
        raise ConfigError(f"{path}.factor", "must be 1 or more")
    return RetryPolicy(
        initial=initial,
        max=maximum,
        factor=factor,
        max_attempts=value_at(
            table, "max_attempts", f"{path}.max_attempts", read_positive_int, defaults.max_attempts
        ),
        max_age=value_at(table, "max_age", f"{path}.max_age", read_duration, defaults.max_age),
    )
