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

Sections are read by `dlrhub/settings_schema.py` from the dataclasses below.
Every error is reported (`ConfigErrors`), each naming the key's path, e.g.
`sources[0].allow_ips[1]: ...`, and the variable a value came from.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from dlrhub.event import Status
from dlrhub.normalizers import SourceOptions
from dlrhub.outbound.settings import OutboundConfig
from dlrhub.providers import PROVIDERS, source_providers
from dlrhub.redact import redact_dsn
from dlrhub.settings_schema import (
    Flatten,
    HttpUrl,
    Matches,
    NamedTables,
    Port,
    PositiveInt,
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
    Network,
    read_bool,
    read_choice,
    read_list,
    read_name,
    read_network,
    read_secret,
    read_table,
    read_text,
    reject_unknown,
    value_at,
)
from dlrhub.sinks.settings import SinkConfig, read_sink

ENV_PREFIX = "DLRHUB_"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A `[[sources]]` entry. `token` is its credential, under the key its provider's
    `SourceSpec.secret_key` names (`token`, or Twilio's `auth_token`)."""

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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: Port = 8080
    max_body_bytes: PositiveInt = 64 * 1024
    public_url: HttpUrl | None = None
    forwarded_allow_ips: str | None = None
    access_log: bool = True
    ingest_worker: bool = True  # `dlrhub serve` normalizes and commits in a second process


@dataclass(frozen=True, slots=True)
class StoreConfig:
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = None  # sqlite
    dsn: str | None = None  # postgres: postgresql://user:password@host:5432/db
    schema: Annotated[  # postgres
        str, Matches(r"[a-z_][a-z0-9_]{0,62}", "is not a plain lower-case schema name")
    ] = "dlrhub"
    max_batch: PositiveInt = 512

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.backend == "postgres" and not (
            self.dsn and self.dsn.startswith(("postgresql://", "postgres://"))
        ):
            yield "dsn", "is required with backend 'postgres': postgresql://..."


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("dlrhub-data")
    admin_token: Secret | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sources: Annotated[tuple[SourceConfig, ...], NamedTables("source", _source)] = ()
    sinks: Annotated[tuple[SinkConfig, ...], NamedTables("sink", read_sink)] = ()
    # `[[accounts]]` and `[poller]` are top-level tables
    outbound: Annotated[OutboundConfig, Flatten()] = field(default_factory=OutboundConfig)

    @property
    def sqlite_path(self) -> Path:
        return self.store.path or self.data_dir / "dlrhub.sqlite3"

    @property
    def store_label(self) -> str:
        """Where events are stored, fit to print (no password)."""
        if self.store.backend == "postgres" and self.store.dsn:
            return f"PostgreSQL {redact_dsn(self.store.dsn)}, schema {self.store.schema}"
        return str(self.sqlite_path)

    def source(self, name: str) -> SourceConfig | None:
        return next((source for source in self.sources if source.name == name), None)


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
    not_applied = apply_environment(document, env)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_path(document, key.split("."), value)
    try:
        config = parse_config(document)
    except ConfigErrors as errors:
        raise ConfigErrors([*not_applied, *errors.errors]) from None
    if not_applied:
        raise ConfigErrors(not_applied)
    return config


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


SOURCE_KEYS = {"name", "provider", "allow_ips", "status_map", "timezone"}


def _source(path: str, item: Any) -> SourceConfig:
    table = read_table(path, item)
    provider = read_choice(
        path, table, "provider", source_providers(), "a known provider that pushes callbacks"
    )
    spec = PROVIDERS[provider].source
    assert spec is not None  # source_providers() lists only providers with a SourceSpec
    receipt_keys = {"dlr_params", "dlr_plus_as_space"} if spec.dlr_params is not None else set()
    reject_unknown(path, table, SOURCE_KEYS | {spec.secret_key} | receipt_keys)
    name = read_name(path, table)
    token = value_at(table, spec.secret_key, f"{path}.{spec.secret_key}", read_secret, None)
    if token is None:
        raise ConfigError(
            f"{path}.{spec.secret_key}", "is required: 16 or more URL-safe characters"
        )
    allow_ips = tuple(
        read_network(f"{path}.allow_ips[{i}]", value)
        for i, value in enumerate(read_list(f"{path}.allow_ips", table.get("allow_ips", [])))
    )
    dlr_params = dict(spec.dlr_params or {})
    params_doc = read_table(f"{path}.dlr_params", table.get("dlr_params", {}))
    reject_unknown(f"{path}.dlr_params", params_doc, set(dlr_params))
    for key, value in params_doc.items():
        dlr_params[key] = read_text(f"{path}.dlr_params.{key}", value)
    status_map = {}
    for key, value in read_table(f"{path}.status_map", table.get("status_map", {})).items():
        text = read_text(f"{path}.status_map.{key}", value).lower()
        try:
            status_map[str(key).lower()] = Status(text)
        except ValueError:
            choices = ", ".join(status.value for status in Status)
            raise ConfigError(
                f"{path}.status_map.{key}", f"{text!r} is not a status ({choices})"
            ) from None
    timezone = value_at(table, "timezone", f"{path}.timezone", read_text, "UTC")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{path}.timezone", f"{timezone!r} is not a time zone name") from None
    return SourceConfig(
        name=name,
        provider=provider,
        token=token,
        allow_ips=allow_ips,
        options=SourceOptions(
            dlr_params=dlr_params,
            status_map=status_map,
            timezone=timezone,
            dlr_plus_as_space=value_at(
                table, "dlr_plus_as_space", f"{path}.dlr_plus_as_space", read_bool, False
            ),
        ),
    )
