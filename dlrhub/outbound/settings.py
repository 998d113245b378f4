"""The `[[accounts]]` and `[poller]` configuration sections (see docs/outbound.md).

An account is one set of credentials at one provider, used to send and to poll.
Durations are seconds (a number) or text with a unit: `50ms`, `30s`, `5m`,
`1h`, `3d`. Environment overrides address accounts by name, e.g.
`DLRHUB_ACCOUNTS__ONURIX_MAIN__KEY=...` for the account `onurix-main`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from dlrhub.event import Status
from dlrhub.outbound.account import AccountConfig as AccountConfig
from dlrhub.providers import PROVIDERS, account_providers
from dlrhub.settings_schema import (
    AtLeast,
    Check,
    Duration,
    NamedTables,
    Number,
    PositiveDuration,
    PositiveInt,
    parse_section,
    section_keys,
)
from dlrhub.settings_values import (
    ConfigError,
    read_bool,
    read_choice,
    read_duration,
    read_list,
    read_name,
    read_nonnegative_int,
    read_number,
    read_positive_int,
    read_table,
    read_text,
    reject_unknown,
    value_at,
)

COMMON_KEYS = frozenset(
    {
        "name",
        "provider",
        "base_url",
        "timeout",
        "retries",
        "backoff",
        "rate_limit",
        "concurrency",
        "poll",
        "group_size",
        "status_map",
        "stop_statuses",
    }
)


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """When to ask again: `first_interval`, times `multiplier` each poll, up to `max_interval`."""

    enabled: bool = False  # run inside `dlrhub serve`
    first_interval: PositiveDuration = 30.0
    multiplier: Annotated[Number, AtLeast(1, "intervals never shrink")] = 2.0
    max_interval: PositiveDuration = 3600.0
    max_age: Duration = 72 * 3600.0
    jitter: Annotated[
        Number, Check(lambda part: None if part < 1 else "must be from 0 to below 1 (a fraction)")
    ] = 0.1
    batch_size: PositiveInt = 200
    lease: PositiveDuration = 120.0
    idle_sleep: PositiveDuration = 1.0
    auth_pause: Duration = 900.0
    unknown_id_limit: PositiveInt = 3

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.max_interval < self.first_interval:
            yield "max_interval", "must not be shorter than first_interval"


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    """Provider accounts to send and poll through, and the poller's schedule."""

    accounts: Annotated[tuple[AccountConfig, ...], NamedTables("account", _account)] = ()
    poller: PollerConfig = field(default_factory=PollerConfig)

    def account(self, name: str) -> AccountConfig | None:
        return next((account for account in self.accounts if account.name == name), None)


def parse_outbound(document: Mapping[str, Any]) -> OutboundConfig:
    """`[[accounts]]` and `[poller]` of `document` (other keys are not looked at)."""
    keys = section_keys(OutboundConfig)
    return parse_section(OutboundConfig, {k: v for k, v in document.items() if k in keys})


def _account(path: str, item: Any) -> AccountConfig:
    table = read_table(path, item)
    name = read_name(path, table)
    provider = read_choice(path, table, "provider", account_providers(), "a provider")
    spec = PROVIDERS[provider].account
    assert spec is not None  # account_providers() lists only providers with an AccountSpec
    keys = spec.keys | ({"source"} if spec.notification_url else set())
    reject_unknown(path, table, set(COMMON_KEYS | keys))
    settings = {
        key: read_text(f"{path}.{key}", value)
        if key not in spec.durations
        else str(read_duration(f"{path}.{key}", value))
        for key, value in table.items()
        if key in keys
    }
    for alternatives in spec.required:
        if not any(settings.get(key) for key in alternatives):
            raise ConfigError(f"{path}.{alternatives[0]}", f"is required for {provider}")
    for key, problem in spec.check(settings):
        raise ConfigError(f"{path}.{key}", problem)
    base_url = value_at(table, "base_url", f"{path}.base_url", read_text, None)
    base_url = base_url or spec.base_url
    if not re.match(r"^https?://[^/?#\s]+", base_url):
        raise ConfigError(f"{path}.base_url", f"{base_url!r} is not an http(s) URL")
    status_map = {}
    for key, value in read_table(f"{path}.status_map", table.get("status_map", {})).items():
        text = read_text(f"{path}.status_map.{key}", value).lower()
        try:
            status_map[str(key)] = Status(text)
        except ValueError:
            statuses = ", ".join(status.value for status in Status)
            raise ConfigError(
                f"{path}.status_map.{key}", f"{text!r} is not a status ({statuses})"
            ) from None
    stop_statuses = tuple(
        read_text(f"{path}.stop_statuses[{i}]", value)
        for i, value in enumerate(
            read_list(
                f"{path}.stop_statuses",
                table.get("stop_statuses", list(spec.stop_statuses)),
            )
        )
    )
    rate_limit = value_at(table, "rate_limit", f"{path}.rate_limit", read_number, 5.0)
    backoff = value_at(table, "backoff", f"{path}.backoff", read_duration, 0.5)
    retries = value_at(table, "retries", f"{path}.retries", read_nonnegative_int, 3)
    return AccountConfig(
        name=name,
        provider=provider,
        base_url=base_url.rstrip("/"),
        settings=settings,
        timeout=value_at(table, "timeout", f"{path}.timeout", read_duration, 10.0),
        retries=retries,
        backoff=backoff,
        rate_limit=rate_limit,
        concurrency=value_at(table, "concurrency", f"{path}.concurrency", read_positive_int, 4),
        poll=value_at(table, "poll", f"{path}.poll", read_bool, True),
        group_size=value_at(
            table,
            "group_size",
            f"{path}.group_size",
            read_positive_int,
            spec.group_size,
        ),
        status_map=status_map,
        stop_statuses=stop_statuses,
        can_poll=spec.pollable,
        secret_keys=spec.secret_keys,
    )
