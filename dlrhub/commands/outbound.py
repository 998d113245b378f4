"""Commands of the outbound side: send, track, poll, backfill."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from dlrhub.commands.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    PORT,
    CliError,
    Parser,
    config_from,
    configure_logging,
)
from dlrhub.config import Config
from dlrhub.event import Status
from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import load
from dlrhub.store.settings import open_store
from dlrhub.store.tracking import TrackingStore

log = logging.getLogger(__name__)


def add_outbound_commands(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
) -> None:
    send = commands.add_parser(
        "send",
        parents=[common],
        help="send through a provider account and track the messages",
        description="Send an SMS (or a voice call, where the provider offers one) through an"
        " [[accounts]] entry.",
    )
    send.add_argument("--account", required=True, help="the [[accounts]] name")
    send.add_argument("--to", action="append", required=True, help="recipient (repeatable)")
    send.add_argument("--text", required=True)
    send.add_argument("--from", dest="sender", help="sender name or number")
    send.add_argument("--ref", action="append", help="your ref per recipient (repeatable)")
    send.add_argument("--call", action="store_true", help="a voice call (channel 'call')")
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
    poll.add_argument("--metrics-port", type=PORT, help="serve Prometheus /metrics on this port")
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
        help="fill a gap of callbacks from the provider's events report",
        description="Fetch a sending's events report and store the events missing.",
    )
    backfill.add_argument(
        "--account", required=True, help="an [[accounts]] name whose provider has reports"
    )
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
    from dlrhub.store.tracking_sql import open_tracking

    async def session() -> None:
        store = open_store(config.store, config.data_dir, place=config.number_places())
        tracking = open_tracking(config.store, config.data_dir)
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
    configure_logging(config.log_level, config.log_format)
    if not any(account.pollable for account in config.outbound.accounts):
        pollable = sorted(name for name, p in PROVIDERS.items() if p.account and p.account.pollable)
        raise CliError(f"no [[accounts]] can be polled ({', '.join(pollable)}; poll = true)")

    async def run() -> None:
        store = open_store(config.store, config.data_dir, place=config.number_places())
        await store.open()
        poller = Poller(config, store)
        try:
            if args.once:
                await poller.open()
                handled = await poller.run_once()
                print(f"polled {handled} due message(s)")
                await poller.close()
                return
            if args.metrics_port is not None:
                from prometheus_client import CollectorRegistry, start_http_server

                registry = CollectorRegistry()
                poller.metrics.register(registry)
                start_http_server(args.metrics_port, addr=config.server.host, registry=registry)
            stopping = asyncio.Event()
            loop = asyncio.get_running_loop()
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, stopping.set)
            try:
                await poller.start()
                await stopping.wait()
            finally:
                # Requests already sent get half the shutdown_timeout to be answered and
                # stored; rows not asked about, or still waiting then, are given back at
                # once (due now, for another poller), not left until their lease runs out.
                async with asyncio.timeout(config.shutdown_timeout):
                    await poller.stop(grace=config.shutdown_timeout / 2)
                log.info("poller %s stopped", poller.owner)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except TimeoutError:
        raise CliError(
            f"the poller did not stop within shutdown_timeout ({config.shutdown_timeout:g}s);"
            " the rows it held come back when their lease runs out"
        ) from None
    return 0


@contextlib.asynccontextmanager
async def _tracking(config: Config) -> AsyncIterator[TrackingStore]:
    """The tracking tables, opened after the event store (which checks the schema)."""
    from dlrhub.store.tracking_sql import open_tracking

    store = open_store(config.store, config.data_dir, place=config.number_places())
    await store.open()
    tracking = open_tracking(config.store, config.data_dir)
    try:
        await tracking.open()
        try:
            yield tracking
        finally:
            await tracking.close()
    finally:
        await store.close()


def command_poll_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    config = config_from(args)
    if config.store.backend == "sqlite" and not config.sqlite_path.exists():
        raise CliError(f"no store at {config.sqlite_path}; pass --data-dir")

    async def run() -> None:
        async with _tracking(config) as tracking:
            now = datetime.now(UTC)
            summaries = {summary.account: summary for summary in await tracking.summaries(now)}
            pauses = {p.account: p for p in await tracking.pauses() if p.paused_until > now}
            bad = {b.account: b for b in await tracking.bad_answers()}
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
                "bad_answers": bad[name].to_dict() if name in bad else None,
            }
            if args.json:
                print(orjson.dumps(data).decode())
                continue
            stopped = ", ".join(f"{k} {v}" for k, v in sorted(data["stopped"].items())) or "none"
            state = "active"
            if pause:
                state = f"PAUSED until {pause.paused_until:%Y-%m-%d %H:%M:%S}Z: {pause.reason}"
            counts = f"polling {data['polling']} (due {data['due']})"
            line = f"{name}: {state}; {counts}; stopped: {stopped}"
            if name in bad:
                last = bad[name]
                line += (
                    f"; bad answers: {last.count}, last at {last.last_at:%Y-%m-%d %H:%M:%S}Z:"
                    f" {last.last_error}"
                )
            print(line)

    asyncio.run(run())
    return 0


def command_poll_resume(args: argparse.Namespace) -> int:
    config = config_from(args)

    async def run() -> bool:
        async with _tracking(config) as tracking:
            return await tracking.resume(args.account)

    if not asyncio.run(run()):
        raise CliError(f"account {args.account!r} is not paused (see 'dlrhub poll status')")
    print(f"account {args.account} resumed; the poller asks again on its next pass")
    return 0


def command_backfill(args: argparse.Namespace) -> int:
    from dlrhub.event import parse_time

    config = config_from(args)
    account = config.outbound.account(args.account)
    if account is None:
        raise CliError(f"no [[accounts]] named {args.account!r}", EXIT_USAGE)
    provider = PROVIDERS[account.provider]
    if provider.backfill is None:
        raise CliError(f"{provider.title} has no events report to backfill from", EXIT_USAGE)
    backfill_sending: Any = load(provider.backfill)
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
