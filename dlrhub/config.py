"""Configuration: `dlrhub.toml`, overridden key by key by `DLRHUB_*` variables.

File: `--config PATH`, else `$DLRHUB_CONFIG`, else none (all defaults).
Environment: a key's path in upper case, levels joined by `__`; sources are
addressed by name. Examples::

    DLRHUB_DATA_DIR=/var/lib/dlrhub
    DLRHUB_ADMIN_TOKEN=...
    DLRHUB_SERVER__PORT=9000
    DLRHUB_SOURCES__NRS360__TOKEN=...          # source named "nrs360"
    DLRHUB_SOURCES__NRS360__ALLOW_IPS=203.0.113.0/24,2001:db8::/32
    DLRHUB_SOURCES__NRS360__DLR_PARAMS__REF=customId

With no `[[sources]]` in the file, variables naming the source `nrs360` and no
`PROVIDER` adjust the zero-configuration source (`dlrhub/first_start.py`)
instead of declaring a new one: its provider and token are filled in there.

Sections are read by `dlrhub/settings_schema.py` from the dataclasses below.
Every error is reported (`ConfigErrors`), each naming the key's path, e.g.
`sources[0].allow_ips[1]: ...`, and the variable a value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from dlrhub.alerts.settings import AlertingConfig, AlertRule, read_alert
from dlrhub.analytics.facts import Place
from dlrhub.analytics.numbers import NumberPlaces
from dlrhub.analytics.settings import AnalyticsConfig
from dlrhub.outbound.settings import OutboundConfig
from dlrhub.providers import DEFAULT_PROVIDER
from dlrhub.providers.source import SourceConfig as SourceConfig
from dlrhub.providers.source import find_source, read_source
from dlrhub.receiver.settings import ServerConfig as ServerConfig
from dlrhub.settings_schema import (
    Flatten,
    NamedTables,
    PositiveDuration,
    Secret,
    named_tables,
    parse_section,
)
from dlrhub.settings_values import (
    ConfigError as ConfigError,
)
from dlrhub.settings_values import (
    ConfigErrors as ConfigErrors,
)
from dlrhub.settings_values import (
    EnvText,
)
from dlrhub.sinks.settings import SinkConfig, WorkerConfig, read_sink
from dlrhub.store.retention import RetentionConfig
from dlrhub.store.settings import StoreConfig as StoreConfig

ENV_PREFIX = "DLRHUB_"


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("dlrhub-data")
    admin_token: Secret | None = None
    viewer_tokens: tuple[Secret, ...] = ()  # read-only: the console and GET /v1 (docs/console.md)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line (dlrhub/logs.py)
    # SIGTERM: every role stops taking work, finishes or hands back what is in flight
    # (leases released at once) and exits within this long.
    shutdown_timeout: PositiveDuration = 20.0
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)  # docs/retention.md
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)  # docs/analytics.md
    sources: Annotated[tuple[SourceConfig, ...], NamedTables("source", read_source)] = ()
    sinks: Annotated[tuple[SinkConfig, ...], NamedTables("sink", read_sink)] = ()
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    # `[[alerts]]` rules, evaluated every `[alerting] interval` (docs/alerts.md)
    alerts: Annotated[tuple[AlertRule, ...], NamedTables("alert", read_alert)] = ()
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    # `[[accounts]]` and `[poller]` are top-level tables
    outbound: Annotated[OutboundConfig, Flatten()] = field(default_factory=OutboundConfig)

    @property
    def sqlite_path(self) -> Path:
        return self.store.sqlite_path(self.data_dir)

    @property
    def store_label(self) -> str:
        """Where events are stored, fit to print (no password)."""
        return self.store.label(self.data_dir)

    def source(self, name: str) -> SourceConfig | None:
        return find_source(self.sources, name)

    def problems(self) -> Iterator[tuple[str, str]]:
        """Names one section gives of another's entries: an alert's sinks and accounts."""
        known = {"sinks": {s.name for s in self.sinks}, "accounts": set(self.outbound.names())}
        for index, rule in enumerate(self.alerts):
            for key, names in (("sinks", rule.sinks), ("accounts", rule.accounts)):
                unknown = [name for name in names if name not in known[key]]
                if unknown:
                    yield (
                        f"alerts[{index}].{key}",
                        f"names no configured {key[:-1]}: {', '.join(map(repr, unknown))}",
                    )

    def number_places(self) -> Place:
        """Recipients' country and operator, numbers without `+` in their source's region."""
        return NumberPlaces(self.analytics.default_region).place_for(self.analytics.regions)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the file (if any), apply environment then explicit overrides, validate.

    Raises `ConfigErrors` with every problem found, not only the first.
    """
    env = os.environ if env is None else env
    if path is None and env.get("DLRHUB_CONFIG"):
        path = Path(env["DLRHUB_CONFIG"])
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("", f"configuration file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError("", f"cannot read configuration file {path}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError("", f"{path} is not valid TOML: {error}") from None
    file_has_sources = "sources" in document
    not_applied = apply_environment(document, env)
    adjusted = None if file_has_sources else take_zero_config_table(document)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_path(document, key.split("."), value)
    errors: list[ConfigError] = list(not_applied)
    try:
        config = parse_config(document)
    except ConfigErrors as found:
        errors += found.errors
    if adjusted is not None:
        try:  # checked now, with a stand-in token, so that check-config reports it
            zero_config_source(adjusted, ZERO_CONFIG_STAND_IN_TOKEN)
        except ConfigErrors as found:
            errors += found.errors
    if errors:
        raise ConfigErrors(errors)
    return config


ZERO_CONFIG_STAND_IN_TOKEN = "stand-in-token-0123456789"  # noqa: S105 (never used to serve)


def take_zero_config_table(document: dict[str, Any]) -> dict[str, Any] | None:
    """The table the environment made for the zero-config source, removed from `document`.

    Only when it is the one source and names no provider: `DLRHUB_SOURCES__NRS360__PROVIDER`
    declares a source of its own, as a file would.
    """
    tables = document.get("sources")
    if not isinstance(tables, list) or len(tables) != 1:
        return None
    (table,) = tables
    if not isinstance(table, dict) or table.get("name") != DEFAULT_PROVIDER.name:
        return None
    if "provider" in table:
        return None
    del document["sources"]
    return table


def zero_config_source(adjusted: Mapping[str, Any], token: str) -> SourceConfig:
    """The zero-config source with `token`, adjusted by the environment's `adjusted` keys
    (a `TOKEN` variable among them replaces `token`). Raises `ConfigErrors`."""
    table = {"token": token, **adjusted, "name": DEFAULT_PROVIDER.name}
    table["provider"] = DEFAULT_PROVIDER.name
    return read_source("sources[0]", table)


def apply_environment(document: dict[str, Any], env: Mapping[str, str]) -> list[ConfigError]:
    """Set each `DLRHUB_*` variable's key in `document`; returns the variables that could not be."""
    named = named_tables(Config)
    not_applied = []
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == "DLRHUB_CONFIG":
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            if keys[0] in named and len(keys) >= 3:
                table = _named_table(document, keys[0], keys[1])
                _set_path(table, keys[2:], EnvText(value, name))
            else:
                _set_path(document, keys, EnvText(value, name))
        except ConfigError as error:
            not_applied.append(ConfigError(error.path, error.problem, name))
    return not_applied


def _named_table(document: dict[str, Any], section: str, env_name: str) -> dict[str, Any]:
    """The table of `[[section]]` whose name is `env_name`, created if missing."""
    tables = document.setdefault(section, [])
    if not isinstance(tables, list):
        raise ConfigError(section, f"must be an array of tables ([[{section}]])")
    for table in tables:
        if isinstance(table, dict) and str(table.get("name", "")).replace("-", "_") == env_name:
            return table
    table = {"name": env_name}
    tables.append(table)
    return table


def _set_path(document: dict[str, Any], keys: list[str], value: Any) -> None:
    target = document
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ConfigError(".".join(keys), "conflicts with a value that is not a table")
    target[keys[-1]] = value


# Validation -----------------------------------------------------------------


def parse_config(document: Mapping[str, Any]) -> Config:
    """`document` (TOML with the environment applied) read as `Config`; raises `ConfigErrors`."""
    return parse_section(Config, document)
