"""The provider registry: every provider dlrhub speaks, one line each.

Receiver, configuration, CLI, redaction, poller and OpenAPI document ask this
registry and name no provider. A provider is a folder here exporting `PROVIDER`
(see `dlrhub.providers.base`); list its module below and it is served,
configurable, sendable and documented.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.clients import ProviderClient
from dlrhub.outbound.ratelimit import RateLimiter
from dlrhub.outbound.transport import Transport
from dlrhub.providers.base import Provider, load
from dlrhub.store.tracking import RequestBudget

MODULES = (
    "dlrhub.providers.nrs360",
    "dlrhub.providers.onurix",
    "dlrhub.providers.uvox",
    "dlrhub.providers.conectaline",
    "dlrhub.providers.smsgateway",
    "dlrhub.providers.twilio",
)

PROVIDERS: Mapping[str, Provider] = {
    provider.name: provider
    for provider in (load(f"{module}:PROVIDER") for module in MODULES)
    if isinstance(provider, Provider)
}

# The provider of the source `dlrhub serve` creates when none is configured.
DEFAULT_PROVIDER = PROVIDERS["nrs360"]

# Every name a user may write for a provider, to its code name.
ALIASES: Mapping[str, str] = {
    name: provider.name for provider in PROVIDERS.values() for name in provider.names
}


def canonical_name(name: str) -> str | None:
    """The code name of a provider written as `name` (any case), or None."""
    return ALIASES.get(name.strip().lower())


def source_providers() -> dict[str, str]:
    """Names usable in `[[sources]] provider = ...`: providers that push."""
    return {alias: code for alias, code in ALIASES.items() if PROVIDERS[code].source}


def account_providers() -> dict[str, str]:
    """Names usable in `[[accounts]] provider = ...`: providers dlrhub sends through."""
    return {alias: code for alias, code in ALIASES.items() if PROVIDERS[code].account}


def client_for(
    account: AccountConfig,
    http: httpx.AsyncClient | None = None,
    *,
    budget: RequestBudget | None = None,
) -> ProviderClient:
    """The client of the account's provider; every request it makes keeps to the
    account's `rate_limit`, shared through `budget` (the tracking store) when given."""
    spec = PROVIDERS[account.provider].account
    if spec is None:
        raise LookupError(f"provider {account.provider!r} has no client")
    limiter = RateLimiter(account.rate_limit, account.name, budget)
    return spec.client(account, Transport(account, http, limiter=limiter))


__all__ = [
    "ALIASES",
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "Provider",
    "account_providers",
    "canonical_name",
    "client_for",
    "source_providers",
]
