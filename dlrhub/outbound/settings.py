"""The `[[accounts]]` and `[poller]` configuration sections (see docs/outbound.md).

An account is one set of credentials at one provider, used to send and to poll.
Durations are seconds (a number) or text with a unit: `50ms`, `30s`, `5m`,
`1h`, `3d`. Environment overrides address accounts by name, e.g.
`DLRHUB_ACCOUNTS__ONURIX_MAIN__KEY=...` for the account `onurix-main`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from dlrhub.event import Status
from dlrhub.outbound.account import AccountConfig as AccountConfig
from dlrhub.providers import PROVIDERS, account_providers
from dlrhub.providers.base import AccountSpec
from dlrhub.providers.source import SourceConfig
from dlrhub.settings_schema import (
    AtLeast,
    Check,
    Duration,
    HttpUrl,
    Name,
    NamedTables,
    NonNegativeInt,
    Number,
    OneOf,
    PositiveDuration,
    PositiveInt,
    parse_section,
    read_variant,
    section_keys,
)
from dlrhub.store.settings import StoreConfig


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

    def names(self) -> tuple[str, ...]:
        return tuple(account.name for account in self.accounts)


def parse_outbound(document: Mapping[str, Any]) -> OutboundConfig:
    """`[[accounts]]` and `[poller]` of `document` (other keys are not looked at)."""
    keys = section_keys(OutboundConfig)
    return parse_section(OutboundConfig, {k: v for k, v in document.items() if k in keys})


@dataclass(frozen=True, slots=True)
class AccountSection:
    """The keys every account has, whatever its provider."""

    name: Name
    provider: Annotated[str, OneOf(account_providers(), "a provider")]
    base_url: HttpUrl | None = None  # default: the provider's
    timeout: Duration = 10.0
    retries: NonNegativeInt = 3
    backoff: Duration = 0.5
    rate_limit: Number = 5.0  # requests per second to the provider; 0 means no limit
    concurrency: PositiveInt = 4
    poll: bool = True
    group_size: PositiveInt | None = None  # default: the provider's
    status_map: Mapping[str, Status] = field(default_factory=dict)
    stop_statuses: tuple[str, ...] | None = None  # default: the provider's


def provider_section(provider: str, spec: AccountSpec) -> type[Any]:
    """The keys a provider adds to its accounts, as a section the reader can read.

    Its `problems()` asks for one of each of `spec.required` and runs `spec.check`.
    """
    keys = spec.keys | ({"source"} if spec.notification_url else set())
    fields = [
        (key, (Duration if key in spec.durations else str) | None, field(default=None))
        for key in sorted(keys)
    ]

    def problems(self: Any) -> Iterator[tuple[str, str]]:
        settings = _settings_of(self)
        for alternatives in spec.required:
            if not any(settings.get(key) for key in alternatives):
                yield alternatives[0], f"is required for {provider}"
        yield from spec.check(settings)

    return dataclasses.make_dataclass(
        "ProviderAccountKeys", fields, namespace={"problems": problems}, frozen=True
    )


def _settings_of(keys: Any) -> dict[str, str]:
    """The provider's keys that were given, as text (durations as seconds)."""
    return {
        name: str(value) for name, value in dataclasses.asdict(keys).items() if value is not None
    }


_SECTIONS = {
    name: provider_section(name, provider.account)
    for name, provider in PROVIDERS.items()
    if provider.account is not None
}


def _account(path: str, item: Any) -> AccountConfig:
    """One `[[accounts]]` table; raises `ConfigErrors` with every problem in it."""
    common, own = read_variant(AccountSection, "provider", _SECTIONS, path, item)
    spec = PROVIDERS[common.provider].account
    assert spec is not None
    return AccountConfig(
        name=common.name,
        provider=common.provider,
        base_url=common.base_url or spec.base_url,
        settings=_settings_of(own),
        timeout=common.timeout,
        retries=common.retries,
        backoff=common.backoff,
        rate_limit=common.rate_limit,
        concurrency=common.concurrency,
        poll=common.poll,
        group_size=common.group_size or spec.group_size,
        status_map=common.status_map,
        stop_statuses=(
            spec.stop_statuses if common.stop_statuses is None else common.stop_statuses
        ),
        can_poll=spec.pollable,
        secret_keys=spec.secret_keys,
    )


class ReceiverAddress(Protocol):
    @property
    def base_url(self) -> str:
        """Where providers reach dlrhub's callback routes."""
        ...


class OutboundSettings(Protocol):
    """What sending and polling read of the configuration (the wiring's `Config` has it)."""

    @property
    def outbound(self) -> OutboundConfig: ...

    @property
    def server(self) -> ReceiverAddress: ...

    @property
    def store(self) -> StoreConfig: ...  # the tracking tables

    @property
    def data_dir(self) -> Path: ...

    def source(self, name: str) -> SourceConfig | None: ...
