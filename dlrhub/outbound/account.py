"""One provider account: the credentials and limits a client sends and polls with.

Kept apart from the parsing in `dlrhub.outbound.settings` so that provider
clients can name it without importing the provider registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dlrhub.event import Status
from dlrhub.normalizers.base import SourceOptions


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
    poll: bool = True  # the user's choice; `pollable` also asks whether the provider can be polled
    can_poll: bool = False  # the provider has a status endpoint
    group_size: int = 1
    status_map: Mapping[str, Status] = field(default_factory=dict)
    stop_statuses: tuple[str, ...] = ()
    # The keys of `settings` that are credentials: the provider's, once configured;
    # every credential name any provider uses when an account is built by hand.
    secret_keys: frozenset[str] = frozenset({"password", "key", "apikey", "api_token"})

    @property
    def pollable(self) -> bool:
        return self.poll and self.can_poll

    @property
    def options(self) -> SourceOptions:
        """What the provider's normalizer is given for this account's answers."""
        return SourceOptions(status_map=self.status_map, timezone="UTC")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credential values, to be scrubbed from any text that leaves a client."""
        return tuple(value for key, value in self.settings.items() if key in self.secret_keys)

    def setting(self, key: str, default: str | None = None) -> str | None:
        return self.settings.get(key, default)

    def __repr__(self) -> str:  # never show credentials in a traceback or a log
        return f"AccountConfig(name={self.name!r}, provider={self.provider!r})"
