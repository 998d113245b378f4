"""Zero-configuration start: a default source and an admin token.

With no `[[sources]]` configured, `dlrhub serve` creates one source of the
registry's default provider (360NRS), named after it, which
`DLRHUB_SOURCES__NRS360__<KEY>` variables adjust (`DLR_PARAMS__REF=customId`,
`ALLOW_IPS`, `TOKEN`) without a file; without
`DLRHUB_ADMIN_TOKEN` it makes an admin token. Both secrets are random and
persisted (mode 0600, in the data directory, mode 0700), so the URLs given to
the provider keep working across restarts. A token is shown once, by the start
that generates it; later starts say which file holds it (`Prepared.files`).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dlrhub.config import (
    Config,
    apply_environment,
    take_zero_config_table,
    zero_config_source,
)
from dlrhub.private_files import write_private_file
from dlrhub.providers import DEFAULT_PROVIDER
from dlrhub.settings_values import read_secret

DEFAULT_SOURCE = DEFAULT_PROVIDER.name
ADMIN_TOKEN = "admin token"  # noqa: S105 (a label, not a secret)


def source_label(name: str) -> str:
    """The label of a source's token in `Prepared.generated` and `Prepared.files`."""
    return f"source {name}"


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    config: Config
    generated: list[str]  # what was created now: "admin token", "source <name>"
    # Where each token that came from the data directory is kept, by the same labels,
    # whether this start generated it or an earlier one did.
    files: dict[str, Path] = dataclasses.field(default_factory=dict)


def prepare(config: Config, env: Mapping[str, str] | None = None) -> Prepared:
    """`config` with the zero-config source and admin token, generated if need be.

    The zero-config source takes the `DLRHUB_SOURCES__NRS360__*` variables of `env`
    (default: the process's), as `load_config` checked them.
    """
    generated = []
    files = {}
    if config.admin_token is None:
        path = config.data_dir / "admin.token"
        token, created = _persisted_secret(path)
        config = dataclasses.replace(config, admin_token=token)
        files[ADMIN_TOKEN] = path
        if created:
            generated.append(ADMIN_TOKEN)
    if not config.sources:
        adjusted = zero_config_adjustments(env)
        if adjusted is not None and "token" in adjusted:  # DLRHUB_SOURCES__NRS360__TOKEN
            source = zero_config_source(adjusted, "")
        else:
            path = config.data_dir / f"source-{DEFAULT_SOURCE}.token"
            token, created = _persisted_secret(path)
            source = zero_config_source(adjusted or {}, token)
            files[source_label(DEFAULT_SOURCE)] = path
            if created:
                generated.append(source_label(DEFAULT_SOURCE))
        config = dataclasses.replace(config, sources=(source,))
    return Prepared(config, generated, files)


def zero_config_adjustments(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The keys `DLRHUB_SOURCES__NRS360__*` set for the zero-config source, if any.

    Meaningful only when the configuration has no sources (`load_config` checked them
    and reported the variables it could not apply).
    """
    document: dict[str, Any] = {}
    apply_environment(document, os.environ if env is None else env)
    return take_zero_config_table(document)


def _persisted_secret(path: Path) -> tuple[str, bool]:
    """The token kept at `path` (held to the rules of a configured one), or a new one."""
    if path.exists():
        return read_secret(str(path), path.read_text(encoding="utf-8").strip()), False
    token = secrets.token_urlsafe(24)
    write_private_file(path, token + "\n")
    return token, True
