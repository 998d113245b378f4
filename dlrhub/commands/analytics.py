"""`dlrhub analytics`: the delivery figures of `GET /v1/analytics/delivery`, from the store.

It reads the store directly (no receiver needed) and builds the same answer as
the API (`dlrhub.receiver.analytics_api.delivery_report`), printed as an aligned
table, CSV or JSON. `dlrhub analytics rebuild` recomputes the rollups from the
kept events (docs/analytics.md) in one transaction holding the writers' lock
(`dlrhub/store/rollups.py`): callbacks wait for it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from dlrhub.analytics.facts import BREAKDOWN
from dlrhub.analytics.params import QueryError, read_delivery_query
from dlrhub.commands.common import EXIT_USAGE, CliError, Parser, config_from, with_store
from dlrhub.receiver.analytics_api import (
    FIGURE_COLUMNS,
    RATES,
    SHARES,
    csv_text,
    delivery_report,
    report_rows,
    rfc3339,
)
from dlrhub.store import Store

# `--from -7d`: argparse takes "-7d" for an option unless it looks like a negative number.
_OFFSET_LOOKS_NEGATIVE = re.compile(r"^-\d+[mhd]?$|^-\d*\.\d+$")


def add_analytics_commands(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
) -> None:
    analytics = commands.add_parser(
        "analytics",
        parents=[common],
        help="delivery figures per provider, country, operator...; or rebuild them",
        description="Print the delivery figures GET /v1/analytics/delivery answers, read from"
        " the store (docs/analytics.md): messages submitted in the range by final status,"
        " delivery rate, time to receipt. 'dlrhub analytics rebuild' recomputes the rollups"
        " from the kept events instead; callbacks wait while it runs.",
    )
    analytics._negative_number_matcher = _OFFSET_LOOKS_NEGATIVE
    analytics.add_argument(
        "action", nargs="?", choices=["rebuild"], help="rebuild: recompute the rollups"
    )
    analytics.add_argument(
        "--from", dest="start", help="RFC 3339 time or offset such as -7d (default: -24h)"
    )
    analytics.add_argument("--to", dest="end", help="RFC 3339 time or offset (default: now)")
    analytics.add_argument("--group-by", default="", help=f"comma list of {', '.join(BREAKDOWN)}")
    analytics.add_argument("--bucket", choices=["hour", "day"], help="a row per hour or UTC day")
    analytics.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="only these values of a breakdown, e.g. country=CO,MX (repeatable)",
    )
    analytics.add_argument(
        "--compare", action="store_true", help="add the previous period's figures"
    )
    analytics.add_argument("--format", choices=["table", "csv", "json"], default="table")
    analytics.set_defaults(handler=command_analytics)


def query_params(args: argparse.Namespace) -> dict[str, str]:
    """The API's parameters the flags stand for (read by the API's own parser)."""
    params: dict[str, str] = {}
    for name, value in (("from", args.start), ("to", args.end), ("bucket", args.bucket)):
        if value:
            params[name] = value
    if args.group_by:
        params["group_by"] = args.group_by
    for given in args.filter:
        name, equals, values = given.partition("=")
        name = name.strip()
        if not equals or name not in BREAKDOWN:
            raise CliError(
                f"--filter {given!r}: write NAME=VALUES with NAME one of {', '.join(BREAKDOWN)}",
                EXIT_USAGE,
            )
        params[name] = f"{params[name]},{values}" if name in params else values
    return params


def command_analytics(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.action == "rebuild":
        return with_store(config, rebuild)
    try:
        query = read_delivery_query(query_params(args), datetime.now(UTC))
    except QueryError as error:
        raise CliError(str(error), EXIT_USAGE) from None

    async def report(store: Store) -> None:
        answer = await delivery_report(store, query, args.compare)
        if args.format == "json":
            sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
        elif args.format == "csv":
            sys.stdout.write(csv_text(answer))
        else:
            sys.stdout.write(table_text(answer))

    return with_store(config, report)


async def rebuild(store: Store) -> None:
    print("rebuilding the delivery rollups from the kept events...", flush=True)
    done = await store.rebuild_rollups()
    since = "all days" if done.from_us is None else f"days from {rfc3339(done.from_us)[:10]}"
    print(f"rebuilt {since}: {done.events} events read, {done.messages} messages")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "delta_delivery_rate":
        return f"{value:+.1f}pt"
    if name.endswith(RATES) or name.endswith(SHARES):
        return f"{value * 100:.1f}%"
    if name.endswith("_s"):
        return f"{value:.2f}"
    return str(value)


def _label(value: Any) -> str:
    return "-" if value is None else str(value) or "(unknown)"


def table_text(report: Mapping[str, Any]) -> str:
    """The report as an aligned table: a row per group and the total; then the total's
    failure reasons and engagement. Rates are of settled messages, times in seconds."""
    keys = [*(["period"] if report["bucket"] else []), *report["group_by"]]
    names = list(FIGURE_COLUMNS)
    if "previous" in report:
        names += ["previous_messages", "previous_delivery_rate", "delta_delivery_rate"]
    total = {"period": None, **report["total"]}
    total_row = report_rows({**report, "group_by": [], "groups": [total]})[0]
    lines = [[*(keys or [""]), *names]]
    for row in report_rows(report) if keys else []:
        lines.append([*(_label(row[key]) for key in keys), *(_cell(n, row[n]) for n in names)])
    lines.append(["total", *([""] * (len(keys) - 1)), *(_cell(n, total_row[n]) for n in names)])
    widths = [max(len(line[index]) for line in lines) for index in range(len(lines[0]))]
    labels = len(keys or [""])
    text = ""
    for line in lines:
        cells = [
            cell.ljust(width) if index < labels else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text += "  ".join(cells).rstrip() + "\n"
    text += f"from {report['from']} to {report['to']} (UTC); times in seconds\n"
    for reason in report["total"]["failure_reasons"]:
        code = f" (error {reason['error_code']})" if reason["error_code"] else ""
        word = reason["provider_status"] or "-"
        text += f"{reason['count']} {reason['status']}: {word}{code}\n"
    for kind, count in report["total"]["engagement"].items():
        text += f"{count} {kind}\n"
    return text
