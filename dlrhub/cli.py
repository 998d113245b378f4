"""The `dlrhub` command: the parser and the one place failures become one line.

A failure prints one line saying what was wrong and what to do, and exits
non-zero (2 for configuration or usage, 1 otherwise); `--verbose` adds the
traceback; a configuration with several errors prints a line for each. A usage
error (an integer argument out of range included) is one line too
(`commands.common.Parser`). The commands themselves live in `dlrhub/commands/`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from dlrhub import __version__
from dlrhub.commands.analytics import add_analytics_commands
from dlrhub.commands.common import EXIT_FAILURE, EXIT_USAGE, CliError, Parser
from dlrhub.commands.outbound import add_outbound_commands
from dlrhub.commands.receiver import add_receiver_commands
from dlrhub.commands.sinks import add_sink_commands
from dlrhub.commands.store import add_store_commands
from dlrhub.config import ConfigError, ConfigErrors
from dlrhub.store import StoreUnavailable


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dlrhub",
        description="Receive, normalize, store and fan out messaging delivery receipts.",
    )
    parser.add_argument("--version", action="version", version=f"dlrhub {__version__}")
    common = Parser(add_help=False)
    common.add_argument("--config", type=Path, help="dlrhub.toml (default: $DLRHUB_CONFIG)")
    common.add_argument("--data-dir", help="where the SQLite store lives (default ./dlrhub-data)")
    common.add_argument("--verbose", action="store_true", help="show tracebacks on failure")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_receiver_commands(commands, common)
    add_sink_commands(commands, common)
    add_outbound_commands(commands, common)
    add_store_commands(commands, common)
    add_analytics_commands(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except CliError as error:
        _fail(args, str(error))
        return error.code
    except ConfigError as error:
        errors = error.errors if isinstance(error, ConfigErrors) else (error,)
        _fail(args, *(f"configuration error: {each}" for each in errors))
        return EXIT_USAGE
    except StoreUnavailable as error:
        _fail(args, f"{error} (is --data-dir right?)")
        return EXIT_FAILURE


def _fail(args: argparse.Namespace, *messages: str) -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc()
    for message in messages:
        print(f"dlrhub: {message}", file=sys.stderr)
