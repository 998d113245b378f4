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
from dlrhub.normalizers.base import SourceOptions
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

PROVIDERS = ("nrs360", "onurix", "uvox", "conectaline")
PROVIDER_NAMES = {"360nrs": "nrs360", "nrs360": "nrs360"} | {name: name for name in PROVIDERS[1:]}

DEFAULT_BASE_URLS = {
    "nrs360": "https://dashboard.360nrs.com/api/rest",
    "onurix": "https://www.onurix.com/api/v1",
    "uvox": "https://my.unityvox.com/api/get-api/v1",
    "conectaline": "https://apisms.conectaline.com/v1",
}
# Providers with a status endpoint the poller can ask.
POLLABLE = frozenset({"nrs360", "onurix", "uvox"})
# Provider statuses after which the provider never says anything new, by provider.
DEFAULT_STOP_STATUSES: Mapping[str, tuple[str, ...]] = {"uvox": ("013",)}
# Ids one status request can carry (360NRS takes several, comma separated).
DEFAULT_GROUP_SIZES = {"nrs360": 50, "onurix": 1, "uvox": 1, "conectaline": 1}

# Keys each provider's account reads, besides the common ones.
PROVIDER_KEYS: Mapping[str, frozenset[str]] = {
    "nrs360": frozenset({"username", "password", "sender", "source"}),
    "onurix": frozenset({"client", "key", "country_code"}),
    "uvox": frozenset({"accountnumber", "apikey", "sender", "status_path", "apikey_in"}),
    "conectaline": frozenset(
        {"api_token", "email", "password", "configuration_name", "token_renew_margin"}
    ),
}
REQUIRED_KEYS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "nrs360": (("username",), ("password",)),
    "onurix": (("client",), ("key",)),
    "uvox": (("accountnumber",), ("apikey",)),
    "conectaline": (("configuration_name",),),
}
SECRET_KEYS = frozenset({"password", "key", "apikey", "api_token"})
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
class AccountConfig:
    """One provider account. `settings` holds the provider's own keys (credentials too)."""

    name: str
    provider: str
    base_url: str
    settings: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5
    rate_limit: float = 5.0  # requests per second to the provider; 0 means no limit
    concurrency: int = 4
    poll: bool = True
    group_size: int = 1
    status_map: Mapping[str, Status] = field(default_factory=dict)
    stop_statuses: tuple[str, ...] = ()

    @property
    def pollable(self) -> bool:
        return self.poll and self.provider in POLLABLE

    @property
    def options(self) -> SourceOptions:
        """What the provider's normalizer is given for this account's answers."""
        return SourceOptions(status_map=self.status_map, timezone="UTC")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credential values, to be scrubbed from any text that leaves a client."""
        return tuple(value for key, value in self.settings.items() if key in SECRET_KEYS)

    def setting(self, key: str, default: str | None = None) -> str | None:
        return self.settings.get(key, default)

    def __repr__(self) -> str:  # never show credentials in a traceback or a log
        return f"AccountConfig(name={self.name!r}, provider={self.provider!r})"


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
    provider = read_choice(path, table, "provider", PROVIDER_NAMES, "a provider")
    reject_unknown(path, table, set(COMMON_KEYS | PROVIDER_KEYS[provider]))
    settings = {
        key: read_text(f"{path}.{key}", value)
        if key != "token_renew_margin"
        else str(read_duration(f"{path}.{key}", value))
        for key, value in table.items()
        if key in PROVIDER_KEYS[provider]
    }
    for alternatives in REQUIRED_KEYS[provider]:
        if not any(settings.get(key) for key in alternatives):
            raise ConfigError(f"{path}.{alternatives[0]}", f"is required for {provider}")
    if provider == "conectaline" and not (
        settings.get("api_token") or (settings.get("email") and settings.get("password"))
    ):
        raise ConfigError(f"{path}.api_token", "is required, or email and password (login)")
    if settings.get("apikey_in", "query") not in ("query", "header"):
        raise ConfigError(f"{path}.apikey_in", "must be 'query' or 'header'")
    base_url = value_at(table, "base_url", f"{path}.base_url", read_text, None)
    base_url = base_url or DEFAULT_BASE_URLS[provider]
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
                table.get("stop_statuses", list(DEFAULT_STOP_STATUSES.get(provider, ()))),
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
            DEFAULT_GROUP_SIZES[provider],
        ),
        status_map=status_map,
        stop_statuses=stop_statuses,
    )
