"""Commands of the fan-out: worker, sinks, replay, dlq."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from dlrhub.commands.common import (
    EXIT_USAGE,
    PORT,
    CliError,
    Parser,
    WholeNumber,
    config_from,
    configure_logging,
    with_store,
)
from dlrhub.commands.store import retention_hold_line
from dlrhub.config import Config, ConfigError
from dlrhub.store import Store

if TYPE_CHECKING:  # imported when a command needs it: the CLI starts faster
    from dlrhub.sinks.service import SinkService


def add_sink_commands(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
) -> None:
    worker = commands.add_parser(
        "worker",
        parents=[common],
        help="deliver stored events to the sinks (with 'serve --no-sinks')",
        description="Run only the sink delivery, without the HTTP receiver.",
    )
    worker.add_argument("--metrics-port", type=PORT, help="serve Prometheus /metrics on this port")
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
    start.add_argument("--after-seq", type=WholeNumber(), help="events with a seq above this one")
    replay.add_argument(
        "--until-seq", type=WholeNumber(), help="up to this seq (default: the latest)"
    )
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
        command.add_argument("ids", type=WholeNumber(), nargs="*", help="dead letter ids")
        command.add_argument("--all", action="store_true", help="every dead letter of the sink")
        command.set_defaults(handler=command_dlq_change, change=action)


def sink_services(config: Config, args: argparse.Namespace) -> list[Any]:
    """The sink delivery service for `serve`, unless --no-sinks or no sink is configured.

    It holds the one-deliverer lock of the data directory already, or this fails.
    """
    if getattr(args, "no_sinks", False) or not config.sinks:
        return []
    from dlrhub.sinks.service import SinkService

    return [claimed(SinkService(config))]


def claimed(service: SinkService) -> SinkService:
    """`service` holding the one-deliverer lock, or a one-line refusal naming the holder."""
    from dlrhub.sinks.deliverer_lock import DeliveryRefused

    try:
        service.claim()
    except DeliveryRefused as error:
        raise CliError(str(error)) from None
    return service


def register_sink_metrics(registry: Any, services: Sequence[Any]) -> None:
    for service in services:
        registry.register(service.collector())


def command_worker(args: argparse.Namespace) -> int:
    import signal

    from dlrhub.sinks.service import SinkService

    config = config_from(args)
    configure_logging(config.log_level, config.log_format)
    if not config.sinks:
        raise CliError("no [[sinks]] configured: nothing to deliver (docs/sinks.md)", EXIT_USAGE)
    if config.store.backend == "sqlite" and not config.sqlite_path.exists():
        raise CliError(f"no store at {config.sqlite_path}; start 'dlrhub serve' first")

    service = claimed(SinkService(config))  # refused here if another process delivers

    async def run() -> None:
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
            try:  # cursors committed and leases released, or given up at the timeout
                async with asyncio.timeout(config.shutdown_timeout):
                    await service.stop()
            except TimeoutError:
                print(
                    f"dlrhub worker: not stopped within shutdown_timeout"
                    f" ({config.shutdown_timeout:g}s); exiting",
                    flush=True,
                )

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
        return with_store(config, with_state)
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
        header = ("SINK", "KIND", "STATE", "LAG", "AGE", "DEAD", "WORKER")
        print("{:<16} {:<9} {:<9} {:>8} {:>6} {:>6}  {:<24} LAST ERROR".format(*header))
        for report in reports:
            error = report.disabled_reason or report.last_error or "-"
            print(
                f"{report.name:<16} {report.kind:<9} {report.state:<9} {report.lag_events:>8}"
                f" {format_age(report.lag_seconds):>6} {report.dead_letters:>6}"
                f"  {report.lease_owner or '-':<24} {error}"
            )
        if (held := await retention_hold_line(config)) is not None:
            print(held)

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
        except OverflowError:
            raise CliError(
                f"--since {args.since!r} reaches back before year 1", EXIT_USAGE
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
        if after == 0 and not args.json:  # with --json, no lines is the answer
            print(f"no dead letters for sink {name}")

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
