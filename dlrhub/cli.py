"""The `dlrhub` command: serve, events, quarantine, check-config.

A failure prints one line saying what was wrong and what to do, and exits
non-zero (2 for configuration or usage, 1 otherwise); `--verbose` adds the
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from dlrhub import __version__
from dlrhub.app import open_store
from dlrhub.config import Config, ConfigError, load_config
from dlrhub.event import Event, EventType, Status
from dlrhub.store import EventFilter, Store, StoreUnavailable

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure to report in one line."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlrhub",
        description="Receive, normalize, store and fan out messaging delivery receipts.",
    )
    parser.add_argument("--version", action="version", version=f"dlrhub {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="dlrhub.toml (default: $DLRHUB_CONFIG)")
    common.add_argument("--data-dir", help="where the SQLite store lives (default ./dlrhub-data)")
    common.add_argument("--verbose", action="store_true", help="show tracebacks on failure")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", parents=[common], help="run the receiver", description="Run the HTTP receiver."
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
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
    events.add_argument("--after-seq", type=int, default=0, help="start after this seq")
    events.add_argument("--limit", type=int, default=100, help="without --follow: at most N")
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
    show.add_argument("entry_id", type=int)
    show.set_defaults(handler=command_quarantine_show)
    reprocess = actions.add_parser(
        "reprocess", parents=[common], help="normalize entries again and store their events"
    )
    reprocess.add_argument("entry_ids", type=int, nargs="*", help="entry ids")
    reprocess.add_argument("--all", action="store_true", help="every pending entry")
    reprocess.set_defaults(handler=command_quarantine_reprocess)

    check = commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration",
        description="Validate dlrhub.toml and DLRHUB_* variables; explain any error.",
    )
    check.set_defaults(handler=command_check_config)
    add_sink_commands(commands, common)
    add_outbound_commands(commands, common)
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
        _fail(args, f"configuration error: {error}")
        return EXIT_USAGE
    except StoreUnavailable as error:
        _fail(args, f"{error} (is --data-dir right?)")
        return EXIT_FAILURE


def _fail(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "verbose", False):
        traceback.print_exc()
    print(f"dlrhub: {message}", file=sys.stderr)


def config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {"data_dir": args.data_dir}
    for key in ("host", "port"):
        overrides[f"server.{key}"] = getattr(args, key, None)
    return load_config(args.config, overrides=overrides)


# serve ----------------------------------------------------------------------


def command_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dlrhub.app import create_app
    from dlrhub.first_start import prepare
    from dlrhub.redact import AccessLogRedactor

    prepared = prepare(config_from(args))
    config = prepared.config
    _configure_logging(config.log_level)
    logging.getLogger("uvicorn.access").addFilter(AccessLogRedactor())
    asyncio.run(_check_store(config))
    print(describe_endpoints(config, prepared.generated), flush=True)
    services = sink_services(config, args)
    pollers = poller_services(config)
    app = create_app(config, services=[*services, *pollers])
    register_sink_metrics(app.state.metrics.registry, services)
    for poller in pollers:  # the poller writes through the app's store, metrics in its registry
        poller.bind(app.state.store, app.state.metrics.registry)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_config=None,
            access_log=config.server.access_log,
            proxy_headers=config.server.forwarded_allow_ips is not None,
            forwarded_allow_ips=config.server.forwarded_allow_ips,
            timeout_graceful_shutdown=10,
            server_header=False,
        )
    )
    server.run()
    return 0 if server.started else EXIT_FAILURE


async def _check_store(config: Config) -> None:
    store = open_store(config)
    await store.open()
    await store.close()


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def describe_endpoints(config: Config, generated: list[str]) -> str:
    """The exact URLs to paste into each provider's settings."""
    base = config.server.public_url or f"http://{config.server.host}:{config.server.port}"
    lines = [f"dlrhub {__version__} listening on {base} (store: {config.store_label})", ""]
    for source in config.sources:
        params = source.options.dlr_params
        dlr_query = "&".join(
            f"{params[field]}={escape}"
            for field, escape in (("status", "%d"), ("phone", "%P"), ("sender", "%p"))
        )
        hook = f"{base}/hooks/{source.name}"
        token = f"token={source.token}"
        lines += [
            f"Source {source.name!r} ({source.provider}):",
            f"  event notifications (POST):      {hook}/events?{token}",
            "  delivery receipts (notificationUrl, GET; put your own ref):",
            f"    {hook}/dlr?{token}&{dlr_query}&{params['ref']}=<your-ref>",
            f"  progress notifications (POST):   {hook}/progress?{token}",
            "",
        ]
    if "admin token" in generated:
        lines.append(f"Admin token (generated, kept in {config.data_dir}/admin.token):")
        lines.append(f"  {config.admin_token}")
    else:
        lines.append("Admin API: Authorization: Bearer <admin token> (see README).")
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
            for event in batch:
                print(format_event(event, as_json=args.json), flush=True)
            printed += len(batch)
            after = batch[-1].seq if batch else after
            if not args.follow:
                if printed >= args.limit or not batch:
                    return
            elif not batch:
                await asyncio.sleep(0.5)

    return _with_store(config, run)


def format_event(event: Event, *, as_json: bool) -> str:
    if as_json:
        return event.to_json().decode()
    data = event.to_dict()
    fields = [
        f"{event.seq:>8}",
        data["received_at"],
        event.source,
        event.provider,
        event.type.value,
        event.status.value if event.status else "-",
        event.message_id or "-",
        event.recipient or "-",
        event.provider_status or "-",
    ]
    return "  ".join(str(field) for field in fields)


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

    return _with_store(config_from(args), run)


def command_quarantine_show(args: argparse.Namespace) -> int:
    async def run(store: Store) -> None:
        entry = await store.quarantine_entry(args.entry_id)
        if entry is None:
            raise CliError(f"no quarantine entry {args.entry_id} (see 'dlrhub quarantine list')")
        print(orjson.dumps(entry.to_dict(with_raw=True), option=orjson.OPT_INDENT_2).decode())

    return _with_store(config_from(args), run)


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

    code = _with_store(config, run)
    return code if failures == 0 else EXIT_FAILURE


# check-config ---------------------------------------------------------------


def command_check_config(args: argparse.Namespace) -> int:
    config = config_from(args)
    print(f"configuration is valid: data_dir={config.data_dir}, store={config.store_label}")
    print(f"listen on {config.server.host}:{config.server.port}")
    if not config.sources:
        print("no sources: 'dlrhub serve' will create the 360NRS source 'nrs360'")
    for source in config.sources:
        allow = ", ".join(str(network) for network in source.allow_ips) or "any address"
        print(f"source {source.name}: provider {source.provider}, allow {allow}")
    if config.admin_token is None:
        print("no admin_token: 'dlrhub serve' will generate one in the data directory")
    return 0


def _with_store(config: Config, run: Callable[[Store], Awaitable[None]]) -> int:
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


# sinks, worker, replay, dlq ----------------------------------------------------


def add_sink_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    worker = commands.add_parser(
        "worker",
        parents=[common],
        help="deliver stored events to the sinks (with 'serve --no-sinks')",
        description="Run only the sink delivery, without the HTTP receiver.",
    )
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    worker.set_defaults(handler=command_worker)

    sinks = commands.add_parser(
        "sinks", help="inspect and control sinks", description="Inspect and control sinks."
    )
    actions = sinks.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", parents=[common], help="lag, last error and state")
    status.add_argument("--json", action="store_true", help="one JSON object per sink")
    status.set_defaults(handler=command_sinks_status)
    for action, text in (("pause", "stop delivering"), ("resume", "deliver again")):
        control = actions.add_parser(action, parents=[common], help=f"{text} to sink NAME")
        control.add_argument("name")
        control.set_defaults(handler=command_sinks_pause, paused=action == "pause")
    secret = actions.add_parser("new-secret", help="print a new webhook secret (whsec_...)")
    secret.set_defaults(handler=command_sinks_new_secret)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="re-deliver stored events to a sink",
        description="Queue a re-delivery of history to sink NAME; the running worker sends it.",
    )
    replay.add_argument("name")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--since", help="from this time: ISO 8601 or an age such as 2h, 3d")
    start.add_argument("--after-seq", type=int, help="events with a seq above this one")
    replay.add_argument("--until-seq", type=int, help="up to this seq (default: the latest)")
    replay.set_defaults(handler=command_replay)

    dlq = commands.add_parser(
        "dlq", help="dead letters of a sink", description="Events a sink gave up on."
    )
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = dlq_actions.add_parser("list", parents=[common], help="list dead letters")
    listing.add_argument("name")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=command_dlq_list)
    for action, text in (("retry", "deliver again"), ("drop", "delete")):
        command = dlq_actions.add_parser(action, parents=[common], help=f"{text} dead letters")
        command.add_argument("name")
        command.add_argument("ids", type=int, nargs="*", help="dead letter ids")
        command.add_argument("--all", action="store_true", help="every dead letter of the sink")
        command.set_defaults(handler=command_dlq_change, change=action)


def sink_services(config: Config, args: argparse.Namespace) -> list[Any]:
    """The sink delivery service for `serve`, unless --no-sinks or no sink is configured."""
    if getattr(args, "no_sinks", False) or not config.sinks:
        return []
    from dlrhub.sinks.service import SinkService

    return [SinkService(config)]


def register_sink_metrics(registry: Any, services: Sequence[Any]) -> None:
    for service in services:
        registry.register(service.collector())


def command_worker(args: argparse.Namespace) -> int:
    import signal

    from dlrhub.sinks.service import SinkService

    config = config_from(args)
    _configure_logging(config.log_level)
    if not config.sinks:
        raise CliError("no [[sinks]] configured: nothing to deliver (docs/sinks.md)", EXIT_USAGE)
    if not config.sqlite_path.exists():
        raise CliError(f"no store at {config.sqlite_path}; start 'dlrhub serve' first")

    async def run() -> None:
        service = SinkService(config)
        if args.metrics_port is not None:
            from prometheus_client import CollectorRegistry, start_http_server

            registry = CollectorRegistry()
            registry.register(service.collector())
            start_http_server(args.metrics_port, addr=config.server.host, registry=registry)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await service.start()
        print(f"dlrhub worker: delivering to {len(config.sinks)} sink(s)", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()

    asyncio.run(run())
    return 0


def _with_sink_state(config: Config, run: Callable[[Store, Any], Awaitable[None]]) -> int:
    from dlrhub.sinks.operations import UnknownSink
    from dlrhub.sinks.service import open_sink_state
    from dlrhub.store.sink_state import SinkStateUnavailable

    async def with_state(store: Store) -> None:
        state = open_sink_state(config)
        await state.open()
        try:
            await run(store, state)
        finally:
            await state.close()

    try:
        return _with_store(config, with_state)
    except UnknownSink as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except SinkStateUnavailable as error:
        raise CliError(f"{error} (is --data-dir right?)") from None


def command_sinks_status(args: argparse.Namespace) -> int:
    from dlrhub.sinks.operations import format_age, sink_reports

    config = config_from(args)

    async def run(store: Store, state: Any) -> None:
        reports = await sink_reports(config, store, state)
        if args.json:
            for report in reports:
                print(orjson.dumps(report.to_dict()).decode())
            return
        if not reports:
            print("no sinks configured (see docs/sinks.md)")
            return
        header = ("SINK", "KIND", "STATE", "LAG", "AGE", "DEAD")
        print("{:<16} {:<9} {:<9} {:>8} {:>6} {:>6}  LAST ERROR".format(*header))
        for report in reports:
            error = report.disabled_reason or report.last_error or "-"
            print(
                f"{report.name:<16} {report.kind:<9} {report.state:<9} {report.lag_events:>8}"
                f" {format_age(report.lag_seconds):>6} {report.dead_letters:>6}  {error}"
            )

    return _with_sink_state(config, run)


def command_sinks_pause(args: argparse.Namespace) -> int:
    from dlrhub.sinks.operations import set_paused, sink_config

    config = config_from(args)

    async def run(store: Store, state: Any) -> None:
        await set_paused(store, state, sink_config(config, args.name), paused=args.paused)
        print(f"sink {args.name} {'paused' if args.paused else 'resumed'}")

    return _with_sink_state(config, run)


def command_sinks_new_secret(args: argparse.Namespace) -> int:
    from dlrhub.sinks.signing import new_secret

    print(new_secret())
    return 0


def command_replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from dlrhub.event import parse_time
    from dlrhub.settings_values import read_duration
    from dlrhub.sinks.operations import queue_replay, sink_config

    config = config_from(args)
    since = None
    if args.since is not None:
        try:
            since = datetime.now(UTC) - timedelta(seconds=read_duration("--since", args.since))
        except ConfigError:
            try:
                since = parse_time(args.since)
            except ValueError:
                raise CliError(
                    f"--since {args.since!r} is neither a time (2026-11-20T10:00:00Z)"
                    " nor an age (2h, 3d)",
                    EXIT_USAGE,
                ) from None

    async def run(store: Store, state: Any) -> None:
        job = await queue_replay(
            store,
            state,
            sink_config(config, args.name),
            after_seq=args.after_seq,
            since=since,
            until_seq=args.until_seq,
        )
        if job is None:
            print("nothing to replay: no events in that range")
        else:
            print(
                f"replay {job.id} queued: events {job.after_seq + 1}..{job.until_seq}"
                f" to sink {args.name} (sent by the running serve or worker)"
            )

    return _with_sink_state(config, run)


def command_dlq_list(args: argparse.Namespace) -> int:
    from dlrhub.sinks.operations import sink_config

    config = config_from(args)

    async def run(store: Store, state: Any) -> None:
        name = sink_config(config, args.name).name
        after = 0
        while letters := await state.dead_letters(name, after_id=after):
            for letter in letters:
                if args.json:
                    print(orjson.dumps(letter.to_dict()).decode())
                else:
                    data = letter.to_dict()
                    print(
                        f"{letter.id:>6}  {letter.state:<5}  seq {letter.event.seq:<8}"
                        f" {data['updated_at']}  {letter.attempts} attempt(s)  {letter.error}"
                    )
            after = letters[-1].id

    return _with_sink_state(config, run)


def command_dlq_change(args: argparse.Namespace) -> int:
    from dlrhub.sinks.operations import retry_dead_letters, sink_config

    if not args.ids and not args.all:
        raise CliError("name dead letter ids or pass --all", EXIT_USAGE)
    config = config_from(args)
    ids = None if args.all else list(args.ids)

    async def run(store: Store, state: Any) -> None:
        sink = sink_config(config, args.name)
        if args.change == "retry":
            count = await retry_dead_letters(store, state, sink, ids)
            print(f"{count} dead letter(s) queued for delivery to sink {sink.name}")
        else:
            count = await state.drop_dead_letters(sink.name, ids)
            print(f"{count} dead letter(s) of sink {sink.name} dropped")

    return _with_sink_state(config, run)


# send, track, poll, backfill -------------------------------------------------


def add_outbound_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    send = commands.add_parser(
        "send",
        parents=[common],
        help="send through a provider account and track the messages",
        description="Send an SMS (or an Onurix call) through an [[accounts]] entry.",
    )
    send.add_argument("--account", required=True, help="the [[accounts]] name")
    send.add_argument("--to", action="append", required=True, help="recipient (repeatable)")
    send.add_argument("--text", required=True)
    send.add_argument("--from", dest="sender", help="sender name or number")
    send.add_argument("--ref", action="append", help="your ref per recipient (repeatable)")
    send.add_argument("--call", action="store_true", help="a voice call (Onurix)")
    send.add_argument(
        "--option", action="append", default=[], help="provider parameter NAME=VALUE (repeatable)"
    )
    send.add_argument("--json", action="store_true", help="one JSON object per recipient")
    send.set_defaults(handler=command_send)

    track = commands.add_parser(
        "track",
        parents=[common],
        help="poll a message sent elsewhere",
        description="Register a message sent outside dlrhub so that the poller follows it.",
    )
    track.add_argument("--account", required=True, help="the [[accounts]] name")
    track.add_argument("--message-id", required=True, action="append", help="(repeatable)")
    track.add_argument("--recipient")
    track.add_argument("--ref")
    track.add_argument("--sent-at", help="ISO 8601; max_age counts from here (default now)")
    track.set_defaults(handler=command_track)

    poll = commands.add_parser(
        "poll",
        parents=[common],
        help="run the status poller, or show its state",
        description="Poll providers for the status of tracked messages (until Ctrl-C).",
    )
    poll.add_argument("--once", action="store_true", help="one pass over what is due, then exit")
    poll.set_defaults(handler=command_poll)
    actions = poll.add_subparsers(dest="action", metavar="ACTION")
    status = actions.add_parser("status", parents=[common], help="tracked messages, pauses")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=command_poll_status)
    resume = actions.add_parser("resume", parents=[common], help="end an account's pause")
    resume.add_argument("account")
    resume.set_defaults(handler=command_poll_resume)

    backfill = commands.add_parser(
        "backfill",
        parents=[common],
        help="fill a gap of 360NRS callbacks from its events report",
        description="Fetch a sending's events report (CSV) and store the events missing.",
    )
    backfill.add_argument("--account", required=True, help="a 360NRS [[accounts]] name")
    backfill.add_argument("--sending-id", required=True)
    backfill.add_argument("--after", required=True, help="ISO 8601 start")
    backfill.add_argument("--before", required=True, help="ISO 8601 end")
    backfill.set_defaults(handler=command_backfill)


def poller_services(config: Config) -> list[Any]:
    """The poller for `serve`, when `[poller] enabled` and an account can be polled."""
    if not config.outbound.poller.enabled or not any(
        account.pollable for account in config.outbound.accounts
    ):
        return []
    from dlrhub.outbound.poller import Poller

    return [Poller(config, None)]


def _with_outbound(config: Config, run: Callable[[Any], Awaitable[None]]) -> int:
    """Run with the store and the tracking tables open (created if missing)."""
    from dlrhub.outbound.errors import ProviderError
    from dlrhub.outbound.sending import Outbound, SendRefused
    from dlrhub.store.tracking_sqlite import SQLiteTrackingStore

    async def session() -> None:
        store = open_store(config)
        tracking = SQLiteTrackingStore(config.sqlite_path)
        await store.open()
        await tracking.open()
        outbound = Outbound(config, store, tracking)
        try:
            await run(outbound)
        finally:
            await outbound.aclose()
            await tracking.close()
            await store.close()

    try:
        asyncio.run(session())
    except SendRefused as error:
        raise CliError(str(error), EXIT_USAGE) from None
    except ProviderError as error:
        raise CliError(f"{error.error}: {error}") from None
    return 0


def command_send(args: argparse.Namespace) -> int:
    from dlrhub.first_start import prepare

    config = prepare(config_from(args)).config
    options = {}
    for option in args.option:
        name, separator, value = option.partition("=")
        if not separator:
            raise CliError(f"--option {option!r} is not NAME=VALUE", EXIT_USAGE)
        options[name] = value
    failures = 0

    async def run(outbound: Any) -> None:
        nonlocal failures
        sent = await outbound.send(
            args.account,
            args.to,
            args.text,
            refs=args.ref,
            sender=args.sender,
            channel="call" if args.call else "sms",
            options=options,
        )
        for message in sent:
            failures += message.status is Status.REJECTED
            if args.json:
                print(orjson.dumps(message.to_dict()).decode())
            else:
                error = ""
                if message.error_code:
                    error = f"  {message.error_code}: {message.error_message}"
                print(
                    f"{message.recipient or '-'}  {message.status.value if message.status else '-'}"
                    f"  id={message.message_id or '-'}  ref={message.ref or '-'}{error}"
                )

    _with_outbound(config, run)
    return EXIT_FAILURE if failures else 0


def command_track(args: argparse.Namespace) -> int:
    from dlrhub.event import parse_time
    from dlrhub.outbound.sending import TrackRequest

    try:
        sent_at = parse_time(args.sent_at) if args.sent_at else None
    except ValueError:
        raise CliError(f"--sent-at {args.sent_at!r} is not an ISO 8601 time", EXIT_USAGE) from None
    items = [
        TrackRequest(message_id, recipient=args.recipient, ref=args.ref, sent_at=sent_at)
        for message_id in args.message_id
    ]

    async def run(outbound: Any) -> None:
        added = await outbound.track(args.account, items)
        print(f"tracking {added} new message(s), {len(items) - added} already tracked")

    return _with_outbound(config_from(args), run)


def command_poll(args: argparse.Namespace) -> int:
    from dlrhub.outbound.poller import Poller

    config = config_from(args)
    _configure_logging(config.log_level)
    if not any(account.pollable for account in config.outbound.accounts):
        raise CliError("no [[accounts]] can be polled (onurix, uvox or 360nrs, poll = true)")

    async def run() -> None:
        store = open_store(config)
        await store.open()
        poller = Poller(config, store)
        try:
            if args.once:
                await poller.open()
                handled = await poller.run_once()
                print(f"polled {handled} due message(s)")
                await poller.close()
            else:
                await poller.start()
                await asyncio.Event().wait()
        finally:
            if not args.once:
                await poller.stop()
            await store.close()

    asyncio.run(run())
    return 0


def command_poll_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from dlrhub.store.tracking_sqlite import SQLiteTrackingStore

    config = config_from(args)
    if not config.sqlite_path.exists():
        raise CliError(f"no store at {config.sqlite_path}; pass --data-dir")

    async def run() -> None:
        tracking = SQLiteTrackingStore(config.sqlite_path)
        await tracking.open()
        try:
            now = datetime.now(UTC)
            summaries = {summary.account: summary for summary in await tracking.summaries(now)}
            pauses = {p.account: p for p in await tracking.pauses() if p.paused_until > now}
        finally:
            await tracking.close()
        names = sorted({*summaries, *(a.name for a in config.outbound.accounts)})
        for name in names:
            summary = summaries.get(name)
            pause = pauses.get(name)
            data: dict[str, Any] = {
                "account": name,
                "polling": summary.polling if summary else 0,
                "due": summary.due if summary else 0,
                "stopped": summary.stopped if summary else {},
                "paused": pause.to_dict() if pause else None,
            }
            if args.json:
                print(orjson.dumps(data).decode())
                continue
            stopped = ", ".join(f"{k} {v}" for k, v in sorted(data["stopped"].items())) or "none"
            state = "active"
            if pause:
                state = f"PAUSED until {pause.paused_until:%Y-%m-%d %H:%M:%S}Z: {pause.reason}"
            counts = f"polling {data['polling']} (due {data['due']})"
            print(f"{name}: {state}; {counts}; stopped: {stopped}")

    asyncio.run(run())
    return 0


def command_poll_resume(args: argparse.Namespace) -> int:
    from dlrhub.store.tracking_sqlite import SQLiteTrackingStore

    config = config_from(args)

    async def run() -> bool:
        tracking = SQLiteTrackingStore(config.sqlite_path)
        await tracking.open()
        try:
            return await tracking.resume(args.account)
        finally:
            await tracking.close()

    if not asyncio.run(run()):
        raise CliError(f"account {args.account!r} is not paused (see 'dlrhub poll status')")
    print(f"account {args.account} resumed; the poller asks again on its next pass")
    return 0


def command_backfill(args: argparse.Namespace) -> int:
    from dlrhub.event import parse_time
    from dlrhub.outbound.backfill import backfill_sending

    config = config_from(args)
    try:
        after, before = parse_time(args.after), parse_time(args.before)
    except ValueError:
        raise CliError("--after and --before must be ISO 8601 times", EXIT_USAGE) from None

    async def run(outbound: Any) -> None:
        result = await backfill_sending(outbound, args.account, args.sending_id, after, before)
        print(
            f"{result.rows} report row(s): {result.stored} stored, {result.known} already known,"
            f" {result.quarantined} quarantined"
        )

    return _with_outbound(config, run)
