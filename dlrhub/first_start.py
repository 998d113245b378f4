"""Zero-configuration start: a default source and an admin token.

With no `[[sources]]` configured, `dlrhub serve` creates one source of the
registry's default provider (360NRS), named after it; without
`DLRHUB_ADMIN_TOKEN` it makes an admin token. Both secrets are random and
persisted (mode 0600, in the data directory, mode 0700), so the URLs given to the provider
keep working across restarts.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

from dlrhub.config import Config, SourceConfig
from dlrhub.private_files import write_private_file
from dlrhub.providers import DEFAULT_PROVIDER

DEFAULT_SOURCE = DEFAULT_PROVIDER.name


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    config: Config
    generated: list[str]  # what was created now: "admin token", "source <name>"


def prepare(config: Config) -> Prepared:
    generated = []
    if config.admin_token is None:
        token, created = _persisted_secret(config.data_dir / "admin.token")
        config = dataclasses.replace(config, admin_token=token)
        if created:
            generated.append("admin token")
    if not config.sources:
        token, created = _persisted_secret(config.data_dir / f"source-{DEFAULT_SOURCE}.token")
        source = SourceConfig(name=DEFAULT_SOURCE, provider=DEFAULT_PROVIDER.name, token=token)
        config = dataclasses.replace(config, sources=(source,))
        if created:
            generated.append(f"source {DEFAULT_SOURCE}")
    return Prepared(config, generated)


def _persisted_secret(path: Path) -> tuple[str, bool]:
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    token = secrets.token_urlsafe(24)
    write_private_file(path, token + "\n")
    return token, True
