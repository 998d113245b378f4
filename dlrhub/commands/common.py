"""What every command shares: exit codes, one-line errors, configuration, the store."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from dlrhub.config import Config, load_config
from dlrhub.logs import configure_logging as configure_logging
from dlrhub.store import Store
from dlrhub.store.base import MAX_INTEGER
from dlrhub.store.settings import open_store

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report in one line."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (what was wrong, where to read more), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"dlrhub: {message} (see '{self.prog} --help')\n")


@dataclass(frozen=True, slots=True)
class WholeNumber:
    """The `type` of an integer argument: plain digits from `low` to `high`, else a usage error.

    `high` defaults to the store's `MAX_INTEGER`, so that no seq or id the store
    cannot hold reaches it (there it would be an overflow and a traceback).
    """

    low: int = 0
    high: int = MAX_INTEGER

    def __call__(self, text: str) -> int:
        if text.isascii() and text.isdigit() and len(text) <= len(str(self.high)):
            value = int(text)
            if self.low <= value <= self.high:
                return value
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise argparse.ArgumentTypeError(
            f"must be a whole number from {self.low} to {self.high}, not {shown}"
        )


PORT = WholeNumber(0, 65535)


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
        store = open_store(config.store, config.data_dir, place=config.number_places())
        await store.open()
        try:
            await run(store)
        finally:
            await store.close()

    asyncio.run(session())
    return 0
