"""A `[[sources]]` entry: one configured sender of callbacks, and how it is read.

Every source has `name`, `provider`, `allow_ips`, `status_map` and `timezone`;
its provider's `SourceSpec` adds the rest: the credential under
`spec.secret_key` (`token`, or Twilio's `auth_token`) and, for a provider whose
receipt parameters the user names, `dlr_params` and `dlr_plus_as_space`. The
keys are read by `dlrhub.settings_schema`, so every error is reported with its
path (`sources[0].allow_ips[1]: ...`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from dlrhub.event import Status
from dlrhub.normalizers.base import SourceOptions
from dlrhub.providers import PROVIDERS, source_providers
from dlrhub.providers.base import SourceSpec
from dlrhub.settings_schema import (
    IpNetwork,
    Name,
    OneOf,
    Required,
    Secret,
    TimeZoneName,
    read_variant,
)
from dlrhub.settings_values import Network


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A configured source. `token` is its credential, whatever key its provider names it."""

    name: str
    provider: str
    token: str
    allow_ips: tuple[Network, ...] = ()
    options: SourceOptions = field(default_factory=SourceOptions)

    def allows(self, address: str | None) -> bool:
        if not self.allow_ips:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.allow_ips)

    def __repr__(self) -> str:  # never show the credential in a traceback or a log
        return f"SourceConfig(name={self.name!r}, provider={self.provider!r})"


class SourceLookup(Protocol):
    """Anything that finds a configured source by name (the wiring's `Config` does)."""

    def source(self, name: str) -> SourceConfig | None: ...


def find_source(sources: tuple[SourceConfig, ...], name: str) -> SourceConfig | None:
    return next((source for source in sources if source.name == name), None)


@dataclass(frozen=True, slots=True)
class SourceSection:
    """The keys every source has, whatever its provider."""

    name: Name
    provider: Annotated[str, OneOf(source_providers(), "a known provider that pushes callbacks")]
    allow_ips: tuple[IpNetwork, ...] = ()
    status_map: Mapping[str, Status] = field(default_factory=dict)
    timezone: TimeZoneName = "UTC"


REQUIRED_SECRET = Required("is required: 16 or more URL-safe characters")


def provider_section(spec: SourceSpec) -> type[Any]:
    """The keys a provider adds to its sources, as a section the reader can read."""
    fields: list[Any] = [(spec.secret_key, Annotated[Secret, REQUIRED_SECRET])]
    if spec.dlr_params is not None:
        params = dataclasses.make_dataclass(
            "DlrParams",
            [(name, str, field(default=value)) for name, value in spec.dlr_params.items()],
            frozen=True,
        )
        fields.append(("dlr_params", params, field(default_factory=params)))
    if spec.plus_as_space is not None:
        fields.append(("dlr_plus_as_space", bool, field(default=spec.plus_as_space)))
    return dataclasses.make_dataclass("ProviderSourceKeys", fields, frozen=True)


_SECTIONS = {
    name: provider_section(provider.source)
    for name, provider in PROVIDERS.items()
    if provider.source is not None
}


def read_source(path: str, item: Any) -> SourceConfig:
    """One `[[sources]]` table; raises `ConfigErrors` with every problem in it."""
    common, own = read_variant(SourceSection, "provider", _SECTIONS, path, item)
    spec = PROVIDERS[common.provider].source
    assert spec is not None
    params = getattr(own, "dlr_params", None)
    return SourceConfig(
        name=common.name,
        provider=common.provider,
        token=getattr(own, spec.secret_key),
        allow_ips=common.allow_ips,
        options=SourceOptions(
            dlr_params=dataclasses.asdict(params) if params is not None else {},
            status_map={key.lower(): status for key, status in common.status_map.items()},
            timezone=common.timezone,
            dlr_plus_as_space=getattr(own, "dlr_plus_as_space", bool(spec.plus_as_space)),
        ),
    )
