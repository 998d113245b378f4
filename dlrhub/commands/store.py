"""Commands of the store itself: migrate, prune, migrate-store."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from dlrhub.commands.common import EXIT_FAILURE, CliError, Parser, config_from
from dlrhub.config import Config
from dlrhub.store.migrations import MigrationMode, SchemaError
from dlrhub.store.settings import open_store
from dlrhub.store.sql import SQLStore


def add_store_commands(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
) -> None:
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="bring the store's schema to this version",
        description="Apply pending schema migrations (creating the schema if empty), then exit."
        " Safe to run again, and while other dlrhub processes run: run it before"
        " starting a new version (docs/operations.md).",
    )
    migrate.add_argument(
        "--check",
        action="store_true",
        help="apply nothing: exit 1 if migrations are pending or the schema is too new",
    )
    migrate.set_defaults(handler=command_migrate)

    prune = commands.add_parser(
        "prune",
        parents=[common],
        help="delete what [retention] says is old enough, now",
        description="One retention pass (docs/retention.md): delete, in small batches, the rows"
        " older than [retention] allows, keeping what an enabled sink has not delivered and"
        " pending quarantine entries. Safe while dlrhub runs.",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="delete nothing: print how many rows would go"
    )
    prune.set_defaults(handler=command_prune)

    copy = commands.add_parser(
        "migrate-store",
        parents=[common],
        help="copy a SQLite store into PostgreSQL",
        description="Copy everything of a SQLite store (events, raw callbacks, message state,"
        " quarantine, sink state, tracking) into a PostgreSQL schema, in batches"
        " (docs/migrate-store.md). Stop the dlrhub processes that write the SQLite store first.",
    )
    copy.add_argument("--from", dest="source", required=True, help="sqlite:PATH")
    copy.add_argument("--to", dest="target", required=True, help="postgresql://user@host/db")
    copy.add_argument("--schema", default=None, help="target schema (default: store.schema)")
    copy.add_argument(
        "--resume",
        action="store_true",
        help="copy into a target that holds rows already (an interrupted copy): rows there stay",
    )
    copy.set_defaults(handler=command_migrate_store)


def command_migrate(args: argparse.Namespace) -> int:
    config = config_from(args)
    mode: MigrationMode = "check" if args.check else "auto"

    async def run() -> str:
        store = open_store(
            config.store, config.data_dir, migrate=mode, place=config.number_places()
        )
        await store.open()
        try:
            assert isinstance(store, SQLStore) and store.schema is not None
            return store.schema.describe()
        finally:
            await store.close()

    try:
        print(f"{config.store_label}: {asyncio.run(run())}")
    except SchemaError as error:
        print(f"{config.store_label}: {error}")
        return EXIT_FAILURE
    return 0


def held_sinks(config: Config) -> list[Any]:
    """The configured sinks, as retention sees them (their cursors hold events back)."""
    from dlrhub.store.retention import HeldSink

    return [HeldSink(sink.name, sink.start == "beginning") for sink in config.sinks]


def retention_services(config: Config) -> list[Any]:
    """The background pruner for `serve`, when `[retention]` prunes anything."""
    if not config.retention.enabled:
        return []
    from dlrhub.store.database import open_database
    from dlrhub.store.retention import RetentionService

    database = open_database(config.store, config.data_dir, synchronous="NORMAL")
    places = config.number_places()
    return [RetentionService(database, config.retention, held_sinks(config), places)]


async def retention_hold_line(config: Config) -> str | None:
    """For `sinks status`: which sink keeps events older than `retention.events`, if one does."""
    from dlrhub.sinks.operations import format_age
    from dlrhub.store.database import open_database
    from dlrhub.store.retention import held_back

    if config.retention.events is None:
        return None
    database = open_database(config.store, config.data_dir)
    await database.open()
    try:
        found = await held_back(database, config.retention, held_sinks(config))
    finally:
        await database.close()
    if found is None:
        return None
    sink, waiting = found
    return (
        f"retention held back by sink {sink}: {waiting:,} event(s) older than"
        f" {format_age(config.retention.events)} wait for it (docs/retention.md)"
    )


PROGRESS_EVERY_SECONDS = 2.0


def command_prune(args: argparse.Namespace) -> int:
    from dlrhub.sinks.operations import format_age
    from dlrhub.store.database import open_database
    from dlrhub.store.retention import Kind, PassReport, Pruner

    config = config_from(args)
    if config.store.backend == "sqlite" and not config.sqlite_path.exists():
        raise CliError(f"no store at {config.sqlite_path}; nothing to prune")
    last_line = time.monotonic()

    def progress(kind: Kind, deleted: int) -> None:
        nonlocal last_line
        if time.monotonic() - last_line >= PROGRESS_EVERY_SECONDS:
            last_line = time.monotonic()
            print(f"{kind}: {deleted:,} deleted so far", flush=True)

    async def run() -> PassReport:
        store = open_store(
            config.store, config.data_dir, place=config.number_places()
        )  # checks (or migrates) the schema
        await store.open()
        await store.close()
        database = open_database(config.store, config.data_dir)
        await database.open()
        try:
            places = config.number_places()
            pruner = Pruner(database, config.retention, held_sinks(config), place=places)
            return await pruner.run_pass(dry_run=args.dry_run, progress=progress)
        finally:
            await database.close()

    report = asyncio.run(run())
    verb = "would be deleted" if args.dry_run else "deleted"
    for kind in report.kinds:
        if kind.age is None:
            print(f"{kind.kind}: kept (no retention set)")
        elif kind.skipped:
            print(f"{kind.kind}: {kind.deleted:,} {verb}; another process is pruning the rest")
        else:
            print(f"{kind.kind}: {kind.deleted:,} {verb} (older than {format_age(kind.age)})")
    if report.held_by is not None and config.retention.events is not None:
        print(f"events after seq {report.hold} are kept until sink {report.held_by} delivers them")
    return 0


def command_migrate_store(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dlrhub.store.copy import CopyRefused, copy_store

    config = config_from(args)
    if not args.source.startswith("sqlite:"):
        raise CliError(f"--from must be sqlite:PATH, not {args.source!r}", 2)
    path = Path(args.source.removeprefix("sqlite:"))
    if not path.is_file():
        raise CliError(f"--from: no SQLite store at {path}", 2)
    if not args.target.startswith(("postgresql://", "postgres://")):
        raise CliError("--to must be a postgresql:// DSN", 2)
    schema = args.schema or config.store.schema

    try:
        asyncio.run(
            copy_store(
                path,
                args.target,
                schema,
                resume=args.resume,
                progress=lambda line: print(line, flush=True),
            )
        )
    except CopyRefused as error:
        raise CliError(str(error)) from None
    return 0
