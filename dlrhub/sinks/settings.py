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
| `record_attempts` | `true`      | keep a row per event per delivery attempt (`attempts.py`) |

Durations are seconds (`2`, `0.5`) or text with a unit (`"500ms"`, `"30s"`,
`"5m"`, `"24h"`, `"7d"`). Retry defaults: initial 0.5s, max 60s, factor 2,
max_attempts 10, max_age 24h (0 = no limit). Attempts and age count only
failures the sink answered (see `dlrhub/sinks/base.py`); a sink that is down
is retried for as long as it is down.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from dlrhub.event import Event, EventType, Status
from dlrhub.providers import ALIASES
from dlrhub.settings_schema import (
    AtLeast,
    AtMost,
    Duration,
    Name,
    Number,
    OneOf,
    PositiveDuration,
    PositiveInt,
    read_key,
    read_section,
    section_keys,
)
from dlrhub.settings_values import ConfigError, ConfigErrors, read_table
from dlrhub.sinks.base import SinkOptions
from dlrhub.store.settings import StoreConfig

MAX_BATCH_SIZE = 10_000
MAX_IN_FLIGHT = 256

StartAt = Literal["beginning", "end"]


def _kind_names() -> Mapping[str, str]:
    from dlrhub.sinks.kinds import KINDS  # the kinds' modules import this one

    return {name: name for name in KINDS}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial: PositiveDuration = 0.5
    max: Duration = 60.0
    factor: Annotated[Number, AtLeast(1)] = 2.0
    max_attempts: PositiveInt = 10
    max_age: Duration = 86_400.0  # seconds since the first failed attempt; 0 = no limit

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.max < self.initial:
            yield "max", "must not be less than retry.initial"


@dataclass(frozen=True, slots=True)
class SinkFilter:
    """Which events a sink gets; an empty set lets everything through."""

    sources: frozenset[str] = frozenset()
    providers: frozenset[Annotated[str, OneOf(ALIASES, "a known provider")]] = frozenset()
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
    """A `[[sinks]]` table: these keys, and the keys of its kind's options (read into `options`)."""

    name: Name
    kind: Annotated[str, OneOf(_kind_names, "a sink kind")]
    options: SinkOptions
    filter: SinkFilter = field(default_factory=SinkFilter)
    batch_size: Annotated[PositiveInt, AtMost(MAX_BATCH_SIZE)] = 100  # default: per kind
    max_in_flight: Annotated[PositiveInt, AtMost(MAX_IN_FLIGHT)] = 1  # default: per kind
    timeout: PositiveDuration = 10.0
    start: StartAt = "beginning"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    record_attempts: bool = True

    def secrets(self) -> tuple[str, ...]:
        return self.options.secrets()


def read_sink(path: str, value: Any) -> SinkConfig:
    """One `[[sinks]]` table; raises `ConfigErrors` with every problem in it."""
    from dlrhub.sinks.kinds import KINDS

    errors: list[ConfigError] = []
    table = read_table(path, value)
    kind_name = read_key(SinkConfig, "kind", path, table, errors)
    kind = KINDS.get(kind_name) if kind_name else None
    options = None
    if kind is None:
        # No kind, no list of its keys: check the keys every sink has, and no others.
        read_section(
            SinkConfig, path, table, errors, given={"kind": "", "options": None}, other_keys=table
        )
    else:
        option_keys = section_keys(kind.options)
        options_table = {key: item for key, item in table.items() if key in option_keys}
        options = read_section(kind.options, path, options_table, errors)
        sink = read_section(
            SinkConfig,
            path,
            table,
            errors,
            given={"kind": kind.name, "options": options},
            defaults={"batch_size": kind.batch_size, "max_in_flight": kind.max_in_flight},
            other_keys={"kind", *option_keys},
        )
        if sink is not None and not errors:
            return sink
    raise ConfigErrors(errors)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """`[worker]`: how the sink workers share the sinks (`dlrhub/sinks/leases.py`)."""

    lease: Annotated[PositiveDuration, AtLeast(0.5)] = 15.0


class SinksSettings(Protocol):
    """What the sink workers read of the configuration (the wiring's `Config` has it)."""

    @property
    def sinks(self) -> tuple[SinkConfig, ...]: ...

    @property
    def store(self) -> StoreConfig: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def sqlite_path(self) -> Path: ...  # the one-deliverer lock file is beside it

    @property
    def worker(self) -> WorkerConfig: ...

    @property
    def shutdown_timeout(self) -> float: ...
