"""The `[store]` section, and the store it names.

The section belongs to the store, so that every part that opens one (the
receiver's ingest worker, the sink workers, the CLI) does it the same way
without importing the wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from dlrhub.analytics.facts import Place
from dlrhub.redact import redact_dsn
from dlrhub.settings_schema import Matches, PositiveInt
from dlrhub.store.base import Store
from dlrhub.store.migrations import MigrationMode
from dlrhub.store.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class StoreConfig:
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: Path | None = None  # sqlite; default: data_dir/dlrhub.sqlite3
    dsn: str | None = None  # postgres: postgresql://user:password@host:5432/db
    schema: Annotated[  # postgres
        str, Matches(r"[a-z_][a-z0-9_]{0,62}", "is not a plain lower-case schema name")
    ] = "dlrhub"
    max_batch: PositiveInt = 512
    # Pending schema migrations at start: "auto" applies them, "check" refuses to
    # start until `dlrhub migrate` ran. Default: auto on SQLite, check on PostgreSQL.
    migrate: Literal["auto", "check"] | None = None

    @property
    def migration_mode(self) -> MigrationMode:
        if self.migrate is not None:
            return self.migrate
        return "check" if self.backend == "postgres" else "auto"

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.backend == "postgres" and not (
            self.dsn and self.dsn.startswith(("postgresql://", "postgres://"))
        ):
            yield "dsn", "is required with backend 'postgres': postgresql://..."

    def sqlite_path(self, data_dir: Path) -> Path:
        """The SQLite file: `path`, else `dlrhub.sqlite3` in the data directory.

        With PostgreSQL, only the data directory's lock files are kept beside it.
        """
        return self.path or data_dir / "dlrhub.sqlite3"

    def label(self, data_dir: Path) -> str:
        """Where events are stored, fit to print (no password)."""
        if self.backend == "postgres" and self.dsn:
            return f"PostgreSQL {redact_dsn(self.dsn)}, schema {self.schema}"
        return str(self.sqlite_path(data_dir))


def open_store(
    settings: StoreConfig,
    data_dir: Path,
    on_commit: Callable[[int], None] | None = None,
    *,
    blocking_commit: bool = False,
    migrate: MigrationMode | None = None,
    place: Place | None = None,
) -> Store:
    """The store `settings` name (not yet opened); `on_commit` gets each batch's size.

    `blocking_commit`: for a process whose loop does nothing but store writes (the
    ingest worker); the SQLite store then commits on the loop (see `SQLiteStore`).
    `migrate` overrides `settings.migration_mode` (`dlrhub migrate` passes "auto").
    `place`: recipients' country and operator for the delivery rollups, with each
    source's region (`Config.number_places`); without it numbers need their `+`.
    """
    mode = migrate or settings.migration_mode
    if settings.backend == "postgres":
        from dlrhub.store.postgres import PostgresStore

        assert settings.dsn is not None  # checked with the configuration
        return PostgresStore(
            settings.dsn,
            schema=settings.schema,
            max_batch=settings.max_batch,
            on_commit=on_commit,
            migrate=mode,
            place=place,
        )
    return SQLiteStore(
        settings.sqlite_path(data_dir),
        max_batch=settings.max_batch,
        on_commit=on_commit,
        blocking_commit=blocking_commit,
        migrate=mode,
        place=place,
    )
