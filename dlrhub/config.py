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

Every error names the key's path, e.g. `sources[0].allow_ips[1]: ...`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrhub.event import Status
from dlrhub.normalizers import SourceOptions
from dlrhub.outbound.settings import OutboundConfig, parse_outbound
from dlrhub.providers import PROVIDERS, source_providers
from dlrhub.redact import redact_dsn
from dlrhub.settings_values import (
    ConfigError as ConfigError,
)
from dlrhub.settings_values import (
    EnvText,
    Network,
    optional_value_at,
    read_bool,
    read_choice,
    read_list,
    read_name,
    read_named_tables,
    read_network,
    read_path,
    read_port,
    read_positive_int,
    read_secret,
    read_table,
    read_text,
    reject_unknown,
    value_at,
)
from dlrhub.sinks.settings import SinkConfig, parse_sinks

ENV_PREFIX = "DLRHUB_"
# Arrays of tables addressed by name in environment variables.
NAMED_TABLES = ("sources", "sinks", "accounts")


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
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    public_url: str | None = None
    forwarded_allow_ips: str | None = None
    access_log: bool = True
    ingest_worker: bool = True  # `dlrhub serve` normalizes and commits in a second process


@dataclass(frozen=True, slots=True)
class StoreConfig:
    backend: str = "sqlite"  # or "postgres"
    path: Path | None = None  # sqlite
    dsn: str | None = None  # postgres: postgresql://user:password@host:5432/db
    schema: str = "dlrhub"  # postgres
    max_batch: int = 512


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("dlrhub-data")
    admin_token: str | None = None
    log_level: str = "info"
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    sources: tuple[SourceConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = ()
    outbound: OutboundConfig = field(default_factory=OutboundConfig)

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
    """Read the file (if any), apply environment then explicit overrides, validate."""
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
    apply_environment(document, env)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_path(document, key.split("."), value)
    return parse_config(document)


def apply_environment(document: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == "DLRHUB_CONFIG":
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if keys[0] in NAMED_TABLES and len(keys) >= 3:
            _named_table(document, keys[0], keys[1]).update(_nested(keys[2:], EnvText(value)))
        else:
            _set_path(document, keys, EnvText(value))


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


def _nested(keys: list[str], value: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    _set_path(result, keys, value)
    return result


def _set_path(document: dict[str, Any], keys: list[str], value: Any) -> None:
    target = document
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ConfigError(".".join(keys), "conflicts with a value that is not a table")
    target[keys[-1]] = value


# Validation -----------------------------------------------------------------


def parse_config(document: Mapping[str, Any]) -> Config:
    reject_unknown(
        "",
        document,
        {
            "data_dir",
            "admin_token",
            "log_level",
            "server",
            "store",
            "sources",
            "sinks",
            "accounts",
            "poller",
        },
    )
    server_doc = read_table("server", document.get("server", {}))
    reject_unknown(
        "server",
        server_doc,
        {
            "host",
            "port",
            "max_body_bytes",
            "public_url",
            "forwarded_allow_ips",
            "access_log",
            "ingest_worker",
        },
    )
    defaults = ServerConfig()
    public_url = optional_value_at(server_doc, "public_url", "server.public_url", read_text)
    if public_url is not None and not re.match(r"^https?://[^/?#\s]+", public_url):
        raise ConfigError("server.public_url", f"{public_url!r} is not an http(s) URL")
    server = ServerConfig(
        host=value_at(server_doc, "host", "server.host", read_text, defaults.host),
        port=value_at(server_doc, "port", "server.port", read_port, defaults.port),
        max_body_bytes=value_at(
            server_doc,
            "max_body_bytes",
            "server.max_body_bytes",
            read_positive_int,
            defaults.max_body_bytes,
        ),
        public_url=public_url.rstrip("/") if public_url else None,
        forwarded_allow_ips=optional_value_at(
            server_doc, "forwarded_allow_ips", "server.forwarded_allow_ips", read_text
        ),
        access_log=value_at(
            server_doc, "access_log", "server.access_log", read_bool, defaults.access_log
        ),
        ingest_worker=value_at(
            server_doc, "ingest_worker", "server.ingest_worker", read_bool, defaults.ingest_worker
        ),
    )
    store_doc = read_table("store", document.get("store", {}))
    reject_unknown("store", store_doc, {"backend", "path", "dsn", "schema", "max_batch"})
    backend = value_at(store_doc, "backend", "store.backend", read_text, "sqlite")
    if backend not in {"sqlite", "postgres"}:
        raise ConfigError("store.backend", f"{backend!r} is not 'sqlite' or 'postgres'")
    dsn = optional_value_at(store_doc, "dsn", "store.dsn", read_text)
    if backend == "postgres" and not (dsn and dsn.startswith(("postgresql://", "postgres://"))):
        raise ConfigError("store.dsn", "is required with backend 'postgres': postgresql://...")
    schema = value_at(store_doc, "schema", "store.schema", read_text, "dlrhub")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError("store.schema", f"{schema!r} is not a plain lower-case schema name")
    store = StoreConfig(
        backend=backend,
        path=optional_value_at(store_doc, "path", "store.path", read_path),
        dsn=dsn,
        schema=schema,
        max_batch=value_at(store_doc, "max_batch", "store.max_batch", read_positive_int, 512),
    )
    log_level = value_at(document, "log_level", "log_level", read_text, "info").lower()
    if log_level not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log_level", f"{log_level!r} is not one of debug, info, warning, error")
    sources = read_named_tables(document, "sources", "source", _source)
    return Config(
        data_dir=value_at(document, "data_dir", "data_dir", read_path, Path("dlrhub-data")),
        admin_token=optional_value_at(document, "admin_token", "admin_token", read_secret),
        log_level=log_level,
        server=server,
        store=store,
        sources=sources,
        sinks=parse_sinks(document),
        outbound=parse_outbound(document),
    )


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
