"""One evaluation of every rule: what holds now, against what is open, into transitions.

Each pass takes the alerts' lease first (one evaluator at a time across processes),
then finds each rule's groups and whether its condition holds for each:

| finding   | alert of the group open | not open |
|-----------|-------------------------|----------|
| holds     | stays open, value kept  | opens    |
| clear     | resolves                | -        |
| too few   | stays as it is          | -        |

"Too few": a delivery group with fewer than `min_messages` settled messages, so
that two failures at night neither page nor resolve anyone. An open alert whose
rule is gone from the configuration resolves. The transitions commit (fenced by the
lease) before their events are written; an event that could not be written is
written at a later pass under the same dedupe key (`events.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from dlrhub.alerts.events import alert_write
from dlrhub.alerts.settings import AlertRule
from dlrhub.analytics.facts import DAY_US, HOUR_US, SETTLED
from dlrhub.analytics.figures import DeliveryQuery, Sums, figures
from dlrhub.event import epoch_micros
from dlrhub.store.alerts_sql import (
    NOTIFIED_OPEN,
    NOTIFIED_RESOLVED,
    AlertRecord,
    Changes,
    Opening,
    Resolution,
    SQLAlerts,
)
from dlrhub.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

BASELINE_DAYS = 7


@dataclass(frozen=True, slots=True)
class SinkReading:
    """A sink as the alerts see it (the wiring reads it from the sink state)."""

    name: str
    lag_seconds: float  # age of its oldest undelivered event
    dead_letters: int


class Readings(Protocol):
    """What the evaluator reads beside the store: the sinks and the poller's accounts."""

    async def sinks(self) -> list[SinkReading]: ...

    async def accounts(self) -> dict[str, str | None]:
        """Each pollable account and the reason it is paused (None: it is not)."""
        ...


@dataclass(frozen=True, slots=True)
class Finding:
    group: str
    holds: bool | None  # None: too little to say
    value: float | None
    threshold: float | None
    message: str


@dataclass
class PassReport:
    """One pass: None transitions when another evaluator held the lease."""

    transitions: list[AlertRecord] | None = field(default_factory=list)


def add_sums(total: Sums, part: Sums) -> None:
    for name, count in part.counters.items():
        total.counters[name] = total.counters.get(name, 0) + count
    for bucket, count in part.latency.items():
        total.latency[bucket] = total.latency.get(bucket, 0) + count
    total.reasons.update(part.reasons)
    total.engagement.update(part.engagement)


def settled(sums: Sums) -> int:
    return sum(sums.counters.get(status, 0) for status in SETTLED)


def group_label(names: Sequence[str], values: Sequence[Any]) -> str:
    """`provider=nrs360,country=ES`; "" for a rule without groups."""
    pairs = zip(names, values, strict=True)
    return ",".join(f"{name}={value or 'unknown'}" for name, value in pairs)


def _duration(seconds: float) -> str:
    if seconds % 86_400 == 0:
        return f"{seconds / 86_400:g}d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _titled(rule: AlertRule, group: str, text: str) -> str:
    return f"{rule.name}{f' [{group}]' if group else ''}: {text}"


class Evaluator:
    """Evaluates `rules` on the store and `readings`, keeping the state in `alerts`."""

    def __init__(
        self,
        rules: Sequence[AlertRule],
        store: Store,
        alerts: SQLAlerts,
        readings: Readings,
        *,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rules = tuple(rules)
        self.store = store
        self.alerts = alerts
        self.readings = readings
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.token: int | None = None
        self.kinds: dict[str, Callable[[AlertRule, datetime], Awaitable[list[Finding]]]] = {
            "delivery_rate_below": self._rate_below,
            "delivery_rate_drop": self._rate_drop,
            "ttr_p90_above": self._ttr_above,
            "quarantine_growing": self._quarantine,
            "dead_letters_growing": self._dead_letters,
            "account_paused": self._accounts,
            "sink_lagging": self._sink_lag,
        }

    async def run_once(self) -> PassReport:
        """Evaluate every rule now; the transitions made (None: another evaluator's turn)."""
        now = self.clock()
        self.token = await self.alerts.acquire(self.owner, self.lease_seconds)
        if self.token is None:
            return PassReport(None)
        await self.notify(await self.alerts.unnotified())  # those an earlier pass could not
        current = {(alert.rule, alert.group): alert for alert in await self.alerts.open_alerts()}
        configured = {rule.name for rule in self.rules}
        openings: list[Opening] = []
        resolutions: list[Resolution] = []
        values: list[tuple[int, float | None]] = []
        for rule in self.rules:
            for finding in await self.kinds[rule.kind](rule, now):
                alert = current.get((rule.name, finding.group))
                if alert is None and finding.holds:
                    openings.append(
                        Opening(
                            rule.name,
                            rule.kind,
                            finding.group,
                            finding.value,
                            finding.threshold,
                            finding.message,
                        )
                    )
                elif alert is not None and finding.holds is False:
                    resolutions.append(Resolution(alert.id, finding.value, finding.message))
                elif alert is not None and finding.holds:
                    values.append((alert.id, finding.value))
        for (rule_name, _), alert in current.items():
            if rule_name not in configured:
                message = f"{rule_name}: the rule is no longer configured"
                resolutions.append(Resolution(alert.id, alert.last_value, message))
        changes = Changes(openings, resolutions, values)
        transitions = await self.alerts.apply(self.owner, self.token, now, changes)
        for alert in transitions:
            if alert.state == "open":
                log.warning("alert opened: %s", alert.message)
            else:
                log.info("alert resolved: %s", alert.resolve_message)
        await self.notify(transitions)
        return PassReport(transitions)

    async def notify(self, alerts: Sequence[AlertRecord]) -> None:
        """Write each transition's event to the log; one that fails waits for the next pass."""
        for alert in alerts:
            try:
                if alert.notified < NOTIFIED_OPEN:
                    await self.store.write(alert_write(alert, "open", self.clock()))
                if alert.state == "resolved":
                    await self.store.write(alert_write(alert, "resolved", self.clock()))
                level = NOTIFIED_OPEN if alert.state == "open" else NOTIFIED_RESOLVED
                await self.alerts.mark_notified(alert.id, level)
            except StoreUnavailable as error:
                log.warning(
                    "alert %d's event could not be written, will try again: %s", alert.id, error
                )

    async def release(self) -> None:
        if self.token is not None:
            await self.alerts.release(self.owner, self.token)
            self.token = None

    # Delivery kinds: the rollups ---------------------------------------------------

    def _query(self, rule: AlertRule, now: datetime, days_back: int = 0) -> DeliveryQuery:
        """The last `window` of whole hours up to now, the hour running included."""
        now_us = epoch_micros(now) - days_back * DAY_US
        from_us = now_us // HOUR_US * HOUR_US + HOUR_US - round(rule.span * 1e6)
        return DeliveryQuery(from_us, now_us, rule.group_by, None, rule.filters)

    async def _sums(self, rule: AlertRule, now: datetime, days_back: int = 0) -> dict[str, Sums]:
        found = await self.store.delivery_sums(self._query(rule, now, days_back))
        return {group_label(rule.group_by, key[1:]): sums for key, sums in found.items()}

    async def _rate_below(self, rule: AlertRule, now: datetime) -> list[Finding]:
        below = rule.below or 0.0
        findings = []
        for group, sums in (await self._sums(rule, now)).items():
            count = settled(sums)
            rate = figures(sums)["delivery_rate"]
            if count < rule.min_messages or rate is None:
                findings.append(Finding(group, None, rate, below, ""))
                continue
            side = "below" if rate < below else "at or above"
            text = (
                f"delivery rate {rate:.1%} of {count} settled messages in the last"
                f" {_duration(rule.span)} ({side} {below:.1%})"
            )
            findings.append(Finding(group, rate < below, rate, below, _titled(rule, group, text)))
        return findings

    async def _rate_drop(self, rule: AlertRule, now: datetime) -> list[Finding]:
        points = rule.points or 0.0
        baseline: dict[str, Sums] = {}
        for days in range(1, BASELINE_DAYS + 1):
            for group, sums in (await self._sums(rule, now, days)).items():
                add_sums(baseline.setdefault(group, Sums()), sums)
        findings = []
        for group, sums in (await self._sums(rule, now)).items():
            before = baseline.get(group, Sums())
            rate = figures(sums)["delivery_rate"]
            usual = figures(before)["delivery_rate"]
            if (
                rate is None
                or usual is None
                or settled(sums) < rule.min_messages
                or settled(before) < rule.min_messages
            ):
                findings.append(Finding(group, None, rate, None, ""))
                continue
            drop = (usual - rate) * 100
            holds = drop >= points
            text = (
                f"delivery rate {rate:.1%} of {settled(sums)} settled messages in the last"
                f" {_duration(rule.span)}, {drop:.1f} points under the same hours of the"
                f" {BASELINE_DAYS} days before ({usual:.1%}); alerts at {points:g} points"
            )
            threshold = round(usual - points / 100, 6)
            findings.append(Finding(group, holds, rate, threshold, _titled(rule, group, text)))
        return findings

    async def _ttr_above(self, rule: AlertRule, now: datetime) -> list[Finding]:
        limit = rule.seconds or 0.0
        findings = []
        for group, sums in (await self._sums(rule, now)).items():
            p90 = figures(sums)["time_to_receipt"]["p90"]
            if settled(sums) < rule.min_messages or p90 is None:
                findings.append(Finding(group, None, p90, limit, ""))
                continue
            text = (
                f"time to receipt p90 {p90:g}s over {settled(sums)} settled messages in the"
                f" last {_duration(rule.span)} ({'above' if p90 > limit else 'within'} {limit:g}s)"
            )
            findings.append(Finding(group, p90 > limit, p90, limit, _titled(rule, group, text)))
        return findings

    # State kinds --------------------------------------------------------------------

    async def _growing(
        self, rule: AlertRule, now: datetime, group: str, count: int, what: str
    ) -> Finding:
        before = await self.alerts.sample(rule.name, group, now, count, rule.span)
        holds = count > before
        text = (
            f"{count} {what}, {count - before} more than {_duration(rule.span)} ago"
            if holds
            else f"{count} {what}, no more than {_duration(rule.span)} ago"
        )
        return Finding(group, holds, float(count), float(before), _titled(rule, group, text))

    async def _quarantine(self, rule: AlertRule, now: datetime) -> list[Finding]:
        count = await self.store.quarantine_pending_count()
        return [await self._growing(rule, now, "", count, "quarantine entries pending")]

    async def _chosen_sinks(self, rule: AlertRule) -> list[SinkReading]:
        return [s for s in await self.readings.sinks() if not rule.sinks or s.name in rule.sinks]

    async def _dead_letters(self, rule: AlertRule, now: datetime) -> list[Finding]:
        return [
            await self._growing(rule, now, f"sink={s.name}", s.dead_letters, "dead letters")
            for s in await self._chosen_sinks(rule)
        ]

    async def _sink_lag(self, rule: AlertRule, now: datetime) -> list[Finding]:
        limit = rule.minutes or 0.0
        findings = []
        for sink in await self._chosen_sinks(rule):
            lag = round(sink.lag_seconds / 60, 2)
            holds = lag > limit
            text = (
                f"oldest undelivered event {lag:g} minutes old"
                f" ({'over' if holds else 'within'} {limit:g} minutes)"
            )
            group = f"sink={sink.name}"
            findings.append(Finding(group, holds, lag, limit, _titled(rule, group, text)))
        return findings

    async def _accounts(self, rule: AlertRule, now: datetime) -> list[Finding]:
        findings = []
        for name, reason in (await self.readings.accounts()).items():
            if rule.accounts and name not in rule.accounts:
                continue
            group = f"account={name}"
            text = f"poller paused: {reason}" if reason else "poller not paused"
            findings.append(
                Finding(group, reason is not None, None, None, _titled(rule, group, text))
            )
        return findings
