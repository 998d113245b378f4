"""Commands of the store itself: migrate."""

from __future__ import annotations

import argparse
import asyncio

from dlrhub.commands.common import EXIT_FAILURE, Parser, config_from
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


def command_migrate(args: argparse.Namespace) -> int:
    config = config_from(args)
    mode: MigrationMode = "check" if args.check else "auto"

    async def run() -> str:
        store = open_store(config.store, config.data_dir, migrate=mode)
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
