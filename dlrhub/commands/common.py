"""What every command shares: exit codes, one-line errors, configuration, the store."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dlrhub.app import open_store
from dlrhub.config import Config, load_config
from dlrhub.store import Store

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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def with_store(config: Config, run: Callable[[Store], Awaitable[None]]) -> int:
    path = config.sqlite_path
    if config.store.backend == "sqlite" and not path.exists():
        raise CliError(f"no store at {path}; start 'dlrhub serve' first or pass --data-dir")

    async def session() -> None:
        store = open_store(config)
        await store.open()
        try:
            await run(store)
        finally:
            await store.close()

    asyncio.run(session())
    return 0
