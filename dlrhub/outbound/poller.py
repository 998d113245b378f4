"""The status poller: asks providers about tracked messages until each is settled.

One loop per pollable account (`poll = true`, provider with a status API):

1. claim up to `batch_size` due rows (`next_poll_at <= now`) under a lease
   (`dlrhub.store.tracking`), so two pollers never ask about one message at once;
   rows older than `max_age` stop there (`max_age`);
2. ask the provider in groups of `group_size` ids, at most `concurrency` requests
   at a time and `rate_limit` requests per second;
3. normalize the answer with the provider's normalizer (the exchange is the
   raw payload, kind `poll`); store events only for messages whose status or
   provider status changed (and, for answers with event times such as 360NRS,
   events newer than the last one seen), through `Store.write(Accept(...))`;
   an answer that cannot be normalized is quarantined;
4. write back each row: stop at a final status (`final_status`), at one of the
   account's `stop_statuses` (`provider_final`), after `unknown_id_limit`
   answers saying the id is unknown (`unknown_id`); otherwise schedule the next
   poll (`dlrhub.outbound.schedule`).

A 429 is back-pressure, never a verdict on a message: the account holds all
its requests for the answer's `Retry-After` (`busy_hold` when it gives none),
and the rows it was asked about keep their schedule (neither `attempts` nor
the `unknown_id` count moves; they are asked again when the hold ends). Only an
answer that says the id is unknown counts toward `unknown_id`: a 429, a 5xx, a
timeout or a malformed answer never does.

An authentication error pauses the account for `auth_pause` (persisted, so
`/readyz` and `dlrhub poll status` show it from any process; `dlrhub poll
resume` ends it early) instead of hammering the provider with a bad key.

An answer that cannot be read (broken JSON, HTML) is quarantined and counted on
the account, with its error as the last one: `dlrhub poll status` shows them
from any process (`tracking_bad_answers`), `/metrics` as
`dlrhub_poller_bad_answers_total{account}` and
`dlrhub_poller_last_bad_answer{account,error}` (its Unix time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
from prometheus_client import CollectorRegistry

from dlrhub.event import Event, EventType, Status
from dlrhub.normalizers import NormalizeError
from dlrhub.outbound.clients import ProviderClient
from dlrhub.outbound.errors import (
    ProviderAnswerError,
    ProviderAuthError,
    ProviderBusy,
    ProviderError,
    ProviderRejected,
)
from dlrhub.outbound.poll_metrics import PollMetrics
from dlrhub.outbound.schedule import expired, next_poll_at
from dlrhub.outbound.settings import AccountConfig, OutboundSettings, PollerConfig
from dlrhub.providers import PROVIDERS, client_for
from dlrhub.store import Accept, Quarantine, Store, StoreUnavailable
from dlrhub.store.tracking import PollOutcome, TrackedMessage, TrackingStore
from dlrhub.store.tracking_sql import open_tracking

log = logging.getLogger(__name__)

BUSY_HOLD = 1.0  # seconds an account holds after a 429 without `Retry-After`
STOP_GRACE = 5.0  # seconds a stopping poller waits for the requests it has sent
MAX_BUSY_HOLD = 3600.0  # a `Retry-After` longer than this is cut to it
MAX_ERROR_LABEL = 200  # characters of an unreadable answer's error kept on the account

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def decide(
    row: TrackedMessage,
    events: Sequence[Event],
    now: datetime,
    account: AccountConfig,
    config: PollerConfig,
    rng: random.Random | None = None,
) -> tuple[PollOutcome, list[Event]]:
    """What one answer means for one tracked message: its new row, and the events to store.

    Each step is one function below: which events are about this message
    (`events_about`), which status event counts (`latest_status`), the row's new
    status (`advance_status`), whether the answer missed the id (`count_misses`),
    what is new enough to store (`fresh_events`), and whether to stop
    (`stop_reason`, the rules in `STOP_RULES`).
    """
    mine = events_about(row, events)
    latest = latest_status(mine)
    status, provider_status = advance_status(row, latest)
    progress = Progress(status, provider_status, count_misses(row, mine))
    stopped = stop_reason(progress, account, config)
    attempts = row.attempts + 1
    outcome = PollOutcome(
        id=row.id,
        status=status,
        provider_status=provider_status,
        last_event_at=last_event_time(row, mine),
        attempts=attempts,
        misses=progress.misses,
        next_poll_at=None if stopped else next_poll_at(attempts, now, row.created_at, config, rng),
        stopped_reason=stopped,
    )
    return outcome, fresh_events(row, mine, latest)


def events_about(row: TrackedMessage, events: Sequence[Event]) -> list[Event]:
    """The answer's events about this row's message (a grouped answer covers several)."""
    return [event for event in events if event.message_id == row.message_id]


def latest_status(mine: Sequence[Event]) -> Event | None:
    """The status event that counts: highest in the lattice, then latest in time."""
    statuses = _status_events(mine)
    return max(statuses, key=lambda e: (_rank(e.status), e.ordering_time)) if statuses else None


def advance_status(row: TrackedMessage, latest: Event | None) -> tuple[Status | None, str | None]:
    """The row's new (status, provider status): the status never goes down the lattice,
    the provider status is the latest answer's."""
    if latest is None:
        return row.status, row.provider_status
    status = latest.status if _rank(latest.status) > _rank(row.status) else row.status
    return status, latest.provider_status


def count_misses(row: TrackedMessage, mine: Sequence[Event]) -> int:
    """Answers in a row that did not know the id: nothing about it, or a status event
    with reason `unknown_id`. Any other answer resets the count."""
    unknown = not mine or any(
        event.extra.get("reason") == "unknown_id" for event in _status_events(mine)
    )
    return row.misses + 1 if unknown else 0


def fresh_events(row: TrackedMessage, mine: Sequence[Event], latest: Event | None) -> list[Event]:
    """What to store: events newer than the last one seen, and the latest status event
    when it carries no time of its own but changes the status or provider status."""
    fresh = [
        event
        for event in mine
        if event.occurred_at is not None
        and (row.last_event_at is None or event.occurred_at > row.last_event_at)
    ]
    if latest is not None and latest.occurred_at is None and _changes(row, latest):
        fresh.append(latest)
    return fresh


def last_event_time(row: TrackedMessage, mine: Sequence[Event]) -> datetime | None:
    """The latest event time seen so far, this answer's included."""
    times = [event.occurred_at for event in mine if event.occurred_at is not None]
    return max([*times, *([row.last_event_at] if row.last_event_at else [])], default=None)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a tracked message stands after an answer: what the stop rules look at."""

    status: Status | None
    provider_status: str | None
    misses: int


StopRule = Callable[[Progress, AccountConfig, PollerConfig], bool]


def _final_status(progress: Progress, account: AccountConfig, config: PollerConfig) -> bool:
    return progress.status is not None and progress.status.is_final


def _provider_final(progress: Progress, account: AccountConfig, config: PollerConfig) -> bool:
    return (
        progress.provider_status is not None and progress.provider_status in account.stop_statuses
    )


def _unknown_id(progress: Progress, account: AccountConfig, config: PollerConfig) -> bool:
    return progress.misses >= config.unknown_id_limit


STOP_RULES: tuple[tuple[str, StopRule], ...] = (
    ("final_status", _final_status),  # a terminal status in the lattice
    ("provider_final", _provider_final),  # one of the account's `stop_statuses`
    ("unknown_id", _unknown_id),  # `unknown_id_limit` answers in a row without the id
)


def stop_reason(progress: Progress, account: AccountConfig, config: PollerConfig) -> str | None:
    """The `stopped_reason` of the first rule in `STOP_RULES` that holds; None polls on."""
    return next((reason for reason, stops in STOP_RULES if stops(progress, account, config)), None)


def _status_events(mine: Sequence[Event]) -> list[Event]:
    return [e for e in mine if e.type is EventType.MESSAGE_STATUS and e.status is not None]


def _changes(row: TrackedMessage, latest: Event) -> bool:
    return latest.provider_status != row.provider_status or _rank(latest.status) > _rank(row.status)


def _rank(status: Status | None) -> int:
    return status.rank if status is not None else -1


def _retry_later(
    row: TrackedMessage, now: datetime, config: PollerConfig, *, miss: bool = False
) -> PollOutcome:
    attempts, misses = row.attempts + 1, row.misses + (1 if miss else 0)
    stopped = "unknown_id" if misses >= config.unknown_id_limit else None
    return PollOutcome(
        id=row.id,
        status=row.status,
        provider_status=row.provider_status,
        last_event_at=row.last_event_at,
        attempts=attempts,
        misses=misses,
        next_poll_at=None if stopped else next_poll_at(attempts, now, row.created_at, config),
        stopped_reason=stopped,
    )


def _unchanged(row: TrackedMessage, next_at: datetime | None, reason: str | None) -> PollOutcome:
    return PollOutcome(
        id=row.id,
        status=row.status,
        provider_status=row.provider_status,
        last_event_at=row.last_event_at,
        attempts=row.attempts,
        misses=row.misses,
        next_poll_at=next_at,
        stopped_reason=reason,
    )


@dataclass
class _Account:
    config: AccountConfig
    client: ProviderClient
    slots: asyncio.Semaphore
    paused_until: datetime | None = None
    busy_until: datetime | None = None  # after a 429: no request before then
    polls: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Poller:
    """The polling daemon, as an app `Service` (`start`/`stop`) or run by `dlrhub poll`."""

    def __init__(
        self,
        config: OutboundSettings,
        store: Store | None,
        tracking: TrackingStore | None = None,
        *,
        clients: Mapping[str, ProviderClient] | None = None,
        now: Clock = utc_now,
        metrics: PollMetrics | None = None,
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.settings = config.outbound.poller
        self._store = store
        self._own_tracking = tracking is None
        self.tracking: TrackingStore = tracking or open_tracking(config.store, config.data_dir)
        self._given_clients = dict(clients or {})
        self.now = now
        self.metrics = metrics or PollMetrics()
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.accounts: dict[str, _Account] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StoreUnavailable("the poller has no store (bind it to the app's store)")
        return self._store

    def bind(self, store: Store, registry: CollectorRegistry) -> None:
        """Embedded in `serve`: write through the app's store, count in the app's registry."""
        self._store = store
        self.metrics.register(registry)

    async def open(self) -> None:
        if self._own_tracking:
            await self.tracking.open()
        for account in self.config.outbound.accounts:
            if not account.pollable:
                continue
            client = self._given_clients.get(account.name) or client_for(
                account, budget=self.tracking
            )
            self.accounts[account.name] = _Account(
                config=account,
                client=client,
                slots=asyncio.Semaphore(account.concurrency),
            )
            self.metrics.paused.labels(account.name).set(0)

    async def close(self) -> None:
        for state in self.accounts.values():
            if state.config.name not in self._given_clients:
                await state.client.aclose()
        self.accounts.clear()
        if self._own_tracking:
            await self.tracking.close()

    async def start(self) -> None:
        self._stopping.clear()
        await self.open()
        self._tasks = [
            asyncio.create_task(self._loop(state), name=f"dlrhub-poller-{name}")
            for name, state in self.accounts.items()
        ]
        log.info("poller %s started for account(s): %s", self.owner, ", ".join(self.accounts))

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop claiming; let the requests already sent finish for up to `grace` seconds
        (their answers are stored and their rows written back), give back the rows not
        asked about yet, then cancel what is left (its rows are given back too).

        Cancelling a request the provider has already answered would throw the answer
        away, and the row, given back due now, would be asked again at once by another
        poller.
        """
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.close()

    async def run_once(self) -> int:
        """Poll every account's due messages once; how many rows were handled."""
        counts = await asyncio.gather(*(self.poll_account(s) for s in self.accounts.values()))
        return sum(counts)

    async def _loop(self, state: _Account) -> None:
        while not self._stopping.is_set():
            try:
                handled = await self.poll_account(state)
            except StoreUnavailable as error:
                log.warning("poller, account %s: %s", state.config.name, error)
                handled = 0
            except Exception:
                log.exception("poller, account %s: unexpected error", state.config.name)
                handled = 0
            if handled == 0:  # until rows are added for the account, idle_sleep, or stop
                await self._idle(state)

    async def _idle(self, state: _Account) -> None:
        waiting = asyncio.ensure_future(
            self.tracking.wait_for_due(state.config.name, self.settings.idle_sleep)
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stopping):
                task.cancel()
            await asyncio.gather(waiting, stopping, return_exceptions=True)

    async def poll_account(self, state: _Account) -> int:
        if await self._paused(state):
            return 0
        now = self.now()
        if state.busy_until is not None and now < state.busy_until:
            return 0
        lease_until = now + timedelta(seconds=self.settings.lease)
        claim = asyncio.ensure_future(
            self.tracking.claim_due(
                state.config.name, now, self.settings.batch_size, self.owner, lease_until
            )
        )
        try:
            rows = await asyncio.shield(claim)
        except asyncio.CancelledError:  # stopping: let the claim end, then give its rows back
            with contextlib.suppress(StoreUnavailable):
                taken = await claim
                await self.tracking.release([row.id for row in taken], self.owner, now)
            raise
        if not rows:
            return 0
        outcomes: list[PollOutcome] = []
        live = []
        for row in rows:
            if expired(now, row.created_at, self.settings):
                outcomes.append(_unchanged(row, None, "max_age"))
                self.metrics.stopped.labels(state.config.name, "max_age").inc()
            else:
                live.append(row)
        size = max(state.config.group_size, 1)
        groups: list[list[TrackedMessage]] = []
        for channel in sorted({row.channel for row in live}):
            same = [row for row in live if row.channel == channel]
            groups += [same[start : start + size] for start in range(0, len(same), size)]
        # Every group ends (answered, failed or cancelled) before the rows are written back
        # or given back: a group still asking about a row given back would overlap the
        # next poller's query of it.
        polls = [asyncio.ensure_future(self._poll_group(state, group)) for group in groups]
        failure: BaseException | None = None
        try:
            if polls:
                await asyncio.wait(polls)
        finally:
            for poll in polls:
                poll.cancel()  # stopping (the others are done already)
            await asyncio.gather(*polls, return_exceptions=True)
            for poll in polls:
                if poll.cancelled():
                    continue
                if (error := poll.exception()) is not None:
                    failure = failure or error
                else:
                    outcomes += poll.result()
            done = {outcome.id for outcome in outcomes}
            left = [row.id for row in rows if row.id not in done]
            await self.tracking.complete(outcomes, self.owner, self.now())
            if left:  # cancelled or failed mid-batch: give the rest back
                await self.tracking.release(left, self.owner, now)
        if failure is not None:
            raise failure
        return len(rows)

    async def _poll_group(self, state: _Account, group: list[TrackedMessage]) -> list[PollOutcome]:
        account = state.config
        async with state.slots:
            if self._stopping.is_set():
                return []  # not asked: its rows are given back with the batch's others
            if state.paused_until is not None:
                return [_unchanged(row, self.now(), None) for row in group]
            if state.busy_until is not None and self.now() < state.busy_until:
                return [_unchanged(row, state.busy_until, None) for row in group]
            started = time.perf_counter()
            try:
                exchange = await state.client.status(
                    [row.message_id for row in group], group[0].channel
                )
            except ProviderAuthError as error:
                self._polled(account, group, "auth_error", started)
                await self._pause(state, str(error))
                return [_unchanged(row, self.now(), None) for row in group]
            except ProviderBusy as error:
                self._polled(account, group, "busy", started)
                until = self._hold(state, error.retry_after)
                await self._slow_account(state, error.retry_after)
                return [_unchanged(row, until, None) for row in group]
            except ProviderRejected as error:
                # The provider refuses the query itself: most often an id it does not know.
                self._polled(account, group, "rejected", started)
                log.info("poller, account %s: %s", account.name, error)
                return [_retry_later(row, self.now(), self.settings, miss=True) for row in group]
            except ProviderError as error:
                label = "bad_answer" if isinstance(error, ProviderAnswerError) else "unavailable"
                self._polled(account, group, label, started)
                log.warning("poller, account %s: %s", account.name, error)
                if isinstance(error, ProviderAnswerError):
                    await self._note_bad_answer(state, error.message)
                return [_retry_later(row, self.now(), self.settings) for row in group]
        self.metrics.polls.labels(account.name, "answered").inc()
        now = self.now()
        raw = exchange.raw(account, "poll")
        try:
            events = PROVIDERS[account.provider].normalize(raw, account.options)
        except NormalizeError as error:
            self._polled(account, group, "bad_answer", started)  # counted after "answered"
            await self.store.write(Quarantine(raw, str(error)))
            log.warning("poller, account %s: quarantined an answer: %s", account.name, error)
            await self._note_bad_answer(state, str(error))
            return [_retry_later(row, now, self.settings) for row in group]
        self._log_poll(account, group, "answered", started)
        outcomes: list[PollOutcome] = []
        to_store: list[Event] = []
        for row in group:
            outcome, fresh = decide(row, events, now, account, self.settings)
            outcomes.append(outcome)
            to_store += fresh
            if fresh:
                self.metrics.changes.labels(account.name).inc()
            if outcome.stopped_reason:
                self.metrics.stopped.labels(account.name, outcome.stopped_reason).inc()
        if to_store:
            await self.store.write(Accept(raw, [_with_tracking(e, group) for e in to_store]))
        return outcomes

    def _polled(
        self, account: AccountConfig, group: Sequence[TrackedMessage], outcome: str, started: float
    ) -> None:
        """Count one status request by its outcome, and log its line."""
        self.metrics.polls.labels(account.name, outcome).inc()
        self._log_poll(account, group, outcome, started)

    def _log_poll(
        self, account: AccountConfig, group: Sequence[TrackedMessage], outcome: str, started: float
    ) -> None:
        """The line of one status request: at INFO, as the account's `rate_limit` bounds how
        many there are (problems also have a line of their own, with the error)."""
        if not log.isEnabledFor(logging.INFO):
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        log.info(
            "poll of account %s: %d message(s), %s in %.1f ms",
            account.name,
            len(group),
            outcome,
            duration_ms,
            extra={
                "account": account.name,
                "provider": account.provider,
                "messages": len(group),
                "outcome": outcome,
                "duration_ms": duration_ms,
            },
        )

    async def _note_bad_answer(self, state: _Account, error: str) -> None:
        """Show an unreadable answer on the account (`poll status`, /metrics), from any process."""
        now = self.now()
        error = error[:MAX_ERROR_LABEL]
        self.metrics.note_bad_answer(state.config.name, error, now.timestamp())
        await self.tracking.note_bad_answer(state.config.name, error, now)

    def _hold(self, state: _Account, retry_after: float | None) -> datetime:
        """Hold every request of the account for `retry_after` seconds (after a 429)."""
        wait = min(BUSY_HOLD if retry_after is None else retry_after, MAX_BUSY_HOLD)
        until = self.now() + timedelta(seconds=wait)
        if state.busy_until is None or until > state.busy_until:
            state.busy_until = until
            log.info(
                "poller, account %s: the provider answered 429; holding requests for %.1fs",
                state.config.name,
                wait,
            )
        return state.busy_until

    async def _slow_account(self, state: _Account, retry_after: float | None) -> None:
        """Defer the account's shared request budget too, so that its sends and the other
        pollers on the data directory also wait out the `Retry-After` (with a rate_limit).

        Wall-clock time: the budget is shared with other processes, whatever `self.now` is.
        """
        limiter = state.client.transport.limiter
        if limiter is not None:
            wait = min(BUSY_HOLD if retry_after is None else retry_after, MAX_BUSY_HOLD)
            await limiter.defer(time.time() + wait)

    async def _pause(self, state: _Account, reason: str) -> None:
        if state.paused_until is not None:
            return
        now = self.now()
        # `until` stays ours: `_paused`, running meanwhile, may read the store before
        # this pause is in it and clear `state.paused_until`.
        until = state.paused_until = now + timedelta(seconds=self.settings.auth_pause)
        self.metrics.paused.labels(state.config.name).set(1)
        await self.tracking.pause(state.config.name, reason, now, until)
        log.error(
            "poller: account %s paused until %s after an authentication error: %s"
            " (fix the credentials, then 'dlrhub poll resume %s')",
            state.config.name,
            until.isoformat(timespec="seconds"),
            reason,
            state.config.name,
        )

    async def _paused(self, state: _Account) -> bool:
        """Whether the account is paused, here or by another process; lifts expired pauses."""
        now = self.now()
        pause = next(
            (p for p in await self.tracking.pauses() if p.account == state.config.name), None
        )
        if pause is not None and now < pause.paused_until:
            state.paused_until = pause.paused_until
            self.metrics.paused.labels(state.config.name).set(1)
            return True
        if state.paused_until is not None:
            log.info("poller: account %s resumes polling", state.config.name)
        state.paused_until = None
        self.metrics.paused.labels(state.config.name).set(0)
        return False


def _with_tracking(event: Event, group: Sequence[TrackedMessage]) -> Event:
    """Fill what the provider's answer does not carry from the tracking row (ref, recipient)."""
    row = next((row for row in group if row.message_id == event.message_id), None)
    if row is None:
        return event
    return msgspec.structs.replace(
        event,
        correlation_id=event.correlation_id or row.correlation_id,
        recipient=event.recipient or row.recipient,
    )
