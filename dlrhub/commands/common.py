"""What every command shares: exit codes, one-line errors, configuration, the store."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dlrhub.config import Config, load_config
from dlrhub.logs import configure_logging as configure_logging
from dlrhub.store import Store
from dlrhub.store.settings import open_store

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report in one line."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    for key in ("host", "port"):
        overrides[f"server.{key}"] = getattr(args, key, None)
    return load_config(args.config, overrides=overrides)


def with_store(config: Config, run: Callable[[Store], Awaitable[None]]) -> int:
    path = config.sqlite_path
    if config.store.backend == "sqlite" and not path.exists():
        raise CliError(f"no store at {path}; start 'dlrhub serve' first or pass --data-dir")

    async def session() -> None:
        store = open_store(config.store, config.data_dir)
        await store.open()
        try:
            await run(store)
        finally:
            await store.close()

    asyncio.run(session())
    return 0
