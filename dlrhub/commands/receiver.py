"""Commands of the receiver: serve, events, quarantine, check-config."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson

from dlrhub import __version__
from dlrhub.commands.alerts import alert_services
from dlrhub.commands.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    PORT,
    CliError,
    Parser,
    WholeNumber,
    config_from,
    with_store,
)
from dlrhub.commands.outbound import poller_services
from dlrhub.commands.sinks import sink_services
from dlrhub.commands.store import retention_services
from dlrhub.config import Config
from dlrhub.event import Event, EventType, Status
from dlrhub.first_start import ADMIN_TOKEN, source_label, zero_config_adjustments
from dlrhub.providers import DEFAULT_PROVIDER, PROVIDERS
from dlrhub.store import EventFilter, Store
from dlrhub.store.settings import open_store


def add_receiver_commands(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
) -> None:
    serve = commands.add_parser(
        "serve", parents=[common], help="run the receiver", description="Run the HTTP receiver."
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=PORT, help="port to listen on (default 8080)")
    serve.add_argument(
        "--no-sinks", action="store_true", help="do not deliver to sinks (run 'dlrhub worker')"
    )
    serve.set_defaults(handler=command_serve)

    events = commands.add_parser(
        "events",
        parents=[common],
        help="print stored events",
        description="Print stored events in store order.",
    )
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--source")
    events.add_argument("--provider")
    events.add_argument("--message-id")
    events.add_argument("--type", choices=[t.value for t in EventType])
    events.add_argument("--status", choices=[s.value for s in Status])
    events.add_argument("--after-seq", type=WholeNumber(), default=0, help="start after this seq")
    events.add_argument(
        "--limit", type=WholeNumber(1), default=100, help="without --follow: at most N"
    )
    events.set_defaults(handler=command_events)

    quarantine = commands.add_parser(
        "quarantine",
        help="inspect and reprocess quarantined callbacks",
        description="Callbacks that could not be normalized are kept here.",
    )
    actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="list entries")
    listing.add_argument("--state", choices=["pending", "reprocessed"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=command_quarantine_list)
    show = actions.add_parser("show", parents=[common], help="show one entry with its payload")
    show.add_argument("entry_id", type=WholeNumber())
    show.set_defaults(handler=command_quarantine_show)
    reprocess = actions.add_parser(
        "reprocess", parents=[common], help="normalize entries again and store their events"
    )
    reprocess.add_argument("entry_ids", type=WholeNumber(), nargs="*", help="entry ids")
    reprocess.add_argument("--all", action="store_true", help="every pending entry")
    reprocess.set_defaults(handler=command_quarantine_reprocess)
    drop = actions.add_parser(
        "drop",
        parents=[common],
        help="forget entries (the received callbacks stay, for dedupe)",
        description="Delete quarantine entries: those named, or every reprocessed one."
        " A dropped entry's id is never given out again.",
    )
    drop.add_argument("entry_ids", type=WholeNumber(), nargs="*", help="entry ids")
    drop.add_argument("--all-resolved", action="store_true", help="every reprocessed entry")
    drop.set_defaults(handler=command_quarantine_drop)

    check = commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration",
        description="Validate dlrhub.toml and DLRHUB_* variables; explain any error.",
    )
    check.set_defaults(handler=command_check_config)


def command_serve(args: argparse.Namespace) -> int:
    from dlrhub.commands.serving import (
        configure_receiver_logging,
        receiver_app,
        serve_processes,
        uvicorn_server,
    )
    from dlrhub.first_start import prepare

    prepared = prepare(config_from(args))
    config = prepared.config
    configure_receiver_logging(config)
    several = config.server.processes > 1
    services = [] if several else sink_services(config, args)  # refused if another delivers
    asyncio.run(_check_store(config))
    print(describe_endpoints(config, prepared.generated, prepared.files), flush=True)
    if several:
        return serve_processes(config, args)
    pruners = retention_services(config)  # the receiver prunes (docs/retention.md)
    alerts = alert_services(config)  # and evaluates the alerts (docs/alerts.md)
    app = receiver_app(config, [*services, *pruners, *alerts], poller_services(config))
    server = uvicorn_server(config, app)
    server.run()
    return 0 if server.started else EXIT_FAILURE


async def _check_store(config: Config) -> None:
    store = open_store(config.store, config.data_dir, place=config.number_places())
    await store.open()
    await store.close()


def describe_endpoints(
    config: Config, generated: list[str], files: Mapping[str, Path] | None = None
) -> str:
    """The exact URLs to paste into each provider's settings.

    A token is shown only by the start that generated it (`generated`, from
    `first_start.prepare`). Later starts show, in its place, the file that holds it
    (`files`); a token from the configuration file or the environment is never shown:
    the operator has it.
    """
    files = files or {}
    host = config.server.host
    bound = f"http://{f'[{host}]' if ':' in host else host}:{config.server.port}"
    lines = [f"dlrhub {__version__} listening on {bound} (store: {config.store_label})"]
    if config.server.public_url:
        base = config.server.public_url
        lines.append(f"Public URL (what providers call): {base}")
    else:
        base = bound
        lines.append(
            "Public URL: not set (server.public_url); the URLs below use the address above"
        )
    lines.append("")
    for source in config.sources:
        provider = PROVIDERS[source.provider]
        hook = f"{base}/hooks/{source.name}"
        label = source_label(source.name)
        if label in generated:
            token = source.token
        elif label in files:
            token = f"<see {files[label]}>"
        else:
            token = "<your token from the configuration>"  # noqa: S105 (a placeholder)
        lines.append(f"Source {source.name!r} ({source.provider}):")
        urls = provider.source.urls(hook, token, source.options) if provider.source else []
        for url_label, url in urls:
            lines += [f"  {url_label}:", f"    {url}"]
        lines.append("")
    if ADMIN_TOKEN in generated:
        kept_in = files.get(ADMIN_TOKEN, config.data_dir / "admin.token")
        lines.append(f"Admin token (generated, kept in {kept_in}):")
        lines.append(f"  {config.admin_token}")
    elif ADMIN_TOKEN in files:
        lines.append(f"Admin API: Authorization: Bearer <admin token, in {files[ADMIN_TOKEN]}>")
    else:
        lines.append("Admin API: Authorization: Bearer <admin_token from the configuration>")
    return "\n".join(lines)


# events ---------------------------------------------------------------------


def command_events(args: argparse.Namespace) -> int:
    config = config_from(args)

    async def run(store: Store) -> None:
        after = args.after_seq
        printed = 0
        while True:
            batch = await store.events(
                EventFilter(
                    source=args.source,
                    provider=args.provider,
                    message_id=args.message_id,
                    type=EventType(args.type) if args.type else None,
                    status=Status(args.status) if args.status else None,
                    after_seq=after,
                    limit=min(args.limit - printed, 1000) if not args.follow else 1000,
                )
            )
            if batch and not args.json and printed == 0:
                print(EVENT_HEADER)
            for event in batch:
                print(format_event(event, as_json=args.json), flush=True)
            printed += len(batch)
            after = batch[-1].seq if batch else after
            if not args.follow:
                if printed >= args.limit or not batch:
                    return
            elif not batch:
                await asyncio.sleep(0.5)

    return with_store(config, run)


# The table of `dlrhub events`: a heading, and each column's width (a longer value
# pushes the rest of its row right rather than being cut).
EVENT_COLUMNS = (
    ("SEQ", 8),
    ("RECEIVED", 27),
    ("SOURCE", 12),
    ("PROVIDER", 11),
    ("TYPE", 18),
    ("STATUS", 11),
    ("MESSAGE", 20),
    ("RECIPIENT", 14),
    ("PROVIDER STATUS", 0),
)


def _table_row(fields: list[str]) -> str:
    cells = [
        f"{field:>{width}}" if index == 0 else f"{field:<{width}}"
        for index, (field, (_, width)) in enumerate(zip(fields, EVENT_COLUMNS, strict=True))
    ]
    return "  ".join(cells).rstrip()


EVENT_HEADER = _table_row([heading for heading, _ in EVENT_COLUMNS])


def format_event(event: Event, *, as_json: bool) -> str:
    if as_json:
        return event.to_json().decode()
    data = event.to_dict()
    fields = [
        str(event.seq),
        str(data["received_at"]),
        event.source,
        event.provider,
        event.type.value,
        event.status.value if event.status else "-",
        event.message_id or "-",
        event.recipient or "-",
        event.provider_status or "-",
    ]
    return _table_row(fields)


# quarantine -----------------------------------------------------------------


def command_quarantine_list(args: argparse.Namespace) -> int:
    async def run(store: Store) -> None:
        after = 0
        while entries := await store.quarantine_entries(state=args.state, after_id=after):
            for entry in entries:
                if args.json:
                    print(orjson.dumps(entry.to_dict()).decode())
                else:
                    data = entry.to_dict()
                    print(
                        f"{entry.id:>6}  {entry.state:<11}  {data['received_at']}  "
                        f"{entry.raw.source}/{entry.raw.kind}  {entry.reason}"
                    )
            after = entries[-1].id

    return with_store(config_from(args), run)


def command_quarantine_show(args: argparse.Namespace) -> int:
    async def run(store: Store) -> None:
        entry = await store.quarantine_entry(args.entry_id)
        if entry is None:
            raise CliError(f"no quarantine entry {args.entry_id} (see 'dlrhub quarantine list')")
        print(orjson.dumps(entry.to_dict(with_raw=True), option=orjson.OPT_INDENT_2).decode())

    return with_store(config_from(args), run)


def command_quarantine_reprocess(args: argparse.Namespace) -> int:
    from dlrhub.first_start import prepare
    from dlrhub.reprocess import reprocess_entry

    if not args.entry_ids and not args.all:
        raise CliError("name entry ids or pass --all", EXIT_USAGE)
    config = prepare(config_from(args)).config
    failures = 0

    async def run(store: Store) -> None:
        nonlocal failures
        if args.all:
            entries = []
            after = 0
            while page := await store.quarantine_entries(state="pending", after_id=after):
                entries += page
                after = page[-1].id
        else:
            entries = []
            for entry_id in args.entry_ids:
                entry = await store.quarantine_entry(entry_id)
                if entry is None:
                    raise CliError(f"no quarantine entry {entry_id}")
                entries.append(entry)
        for entry in entries:
            result = await reprocess_entry(store, config, entry)
            if result.outcome == "failed_again":
                failures += 1
                current = await store.quarantine_entry(entry.id)
                reason = current.reason if current else "?"
                print(f"{entry.id}: still failing: {reason}")
            else:
                ids = ", ".join(event.id for event in result.events) or "no events"
                print(f"{entry.id}: {result.outcome}: {ids}")
        print(f"{len(entries) - failures} reprocessed, {failures} still failing")

    code = with_store(config, run)
    return code if failures == 0 else EXIT_FAILURE


def command_quarantine_drop(args: argparse.Namespace) -> int:
    if bool(args.entry_ids) == args.all_resolved:
        raise CliError("name entry ids or pass --all-resolved (not both)", EXIT_USAGE)
    missing: list[int] = []

    async def run(store: Store) -> None:
        if args.all_resolved:
            dropped = await store.drop_resolved_quarantine()
        else:
            wanted = list(dict.fromkeys(args.entry_ids))
            dropped = await store.drop_quarantine(wanted)
            missing.extend(sorted(set(wanted) - set(dropped)))
        print(f"dropped {len(dropped)} quarantine entr{'y' if len(dropped) == 1 else 'ies'}")
        if missing:
            listed = ", ".join(str(entry_id) for entry_id in missing)
            print(f"no quarantine entry {listed} (see 'dlrhub quarantine list')", file=sys.stderr)

    code = with_store(config_from(args), run)
    return code if not missing else EXIT_FAILURE


# check-config ---------------------------------------------------------------


def command_check_config(args: argparse.Namespace) -> int:
    config = config_from(args)
    print(f"configuration is valid: data_dir={config.data_dir}, store={config.store_label}")
    print(f"listen on {config.server.host}:{config.server.port}")
    if not config.sources:
        adjusted = sorted(set(zero_config_adjustments() or {}) - {"name"})
        print(
            f"no sources: 'dlrhub serve' will create the {DEFAULT_PROVIDER.title}"
            f" source {DEFAULT_PROVIDER.name!r}"
            + (f", with {', '.join(adjusted)} from the environment" if adjusted else "")
        )
    for source in config.sources:
        allow = ", ".join(str(network) for network in source.allow_ips) or "any address"
        print(f"source {source.name}: provider {source.provider}, allow {allow}")
    for sink in config.sinks:
        print(f"sink {sink.name}: {sink.kind}")
    for account in config.outbound.accounts:
        polled = "polled" if account.pollable else "not polled"
        print(f"account {account.name}: provider {account.provider}, {polled}")
    if config.outbound.accounts:
        where = "inside 'dlrhub serve'" if config.outbound.poller.enabled else "by 'dlrhub poll'"
        print(f"poller: runs {where}")
    if config.admin_token is None:
        print("no admin_token: 'dlrhub serve' will generate one in the data directory")
    return 0
