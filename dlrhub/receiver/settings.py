"""The `[server]` section, and what else the receiver reads of the configuration.

The receiver is given `ReceiverSettings`, not the wiring's `Config` (which
satisfies it): it never imports the configuration module, so it never depends
on the sinks' sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from dlrhub.analytics.facts import Place
from dlrhub.outbound.settings import OutboundSettings
from dlrhub.providers.source import SourceConfig
from dlrhub.settings_schema import HttpUrl, Port, PositiveDuration, PositiveInt, Secret
from dlrhub.store.settings import StoreConfig


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: Port = 8080
    max_body_bytes: PositiveInt = 64 * 1024
    public_url: HttpUrl | None = None
    forwarded_allow_ips: str | None = None
    access_log: bool = True
    ingest_worker: bool = True  # `dlrhub serve` normalizes and commits in a second process
    ingest_timeout: PositiveDuration = 5.0  # a commit not done by then is answered 503
    body_timeout: PositiveDuration = 10.0  # a body not all there by then is answered 408
    limit_concurrency: PositiveInt | None = 1000  # connections; requests above get 503
    processes: PositiveInt = 1  # receiver processes on the one port (dlrhub/commands/serving.py)
    console: bool = True  # the operator console at /console (dlrhub/console)
    session_key: Secret | None = None  # signs console sessions; else one kept in the store
    session_max_age: PositiveDuration = 12 * 3600.0

    @property
    def base_url(self) -> str:
        """Where providers reach this receiver: `public_url`, else the address it binds."""
        return self.public_url or f"http://{self.host}:{self.port}"


class ReceiverSettings(OutboundSettings, Protocol):
    """What the receiver reads: its server, the sources, the admin token, the store."""

    @property
    def server(self) -> ServerConfig: ...

    @property
    def sources(self) -> tuple[SourceConfig, ...]: ...

    @property
    def admin_token(self) -> str | None: ...

    @property
    def viewer_tokens(self) -> tuple[str, ...]: ...

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> Literal["text", "json"]: ...

    @property
    def store(self) -> StoreConfig: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def shutdown_timeout(self) -> float: ...

    def number_places(self) -> Place:
        """Recipients' country and operator, for the delivery rollups the store keeps."""
        ...
