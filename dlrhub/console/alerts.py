"""The Alerts page, `/console/alerts`: open alerts, resolved ones with their history, the rules.

It reads what `GET /v1/alerts` reads, through the same `SQLAlerts.alerts` (open first,
newest first, then resolved, last resolved first) and the same limit (1 to 1000,
default 100); its GET form adds `state=all`. The configured `[[alerts]]` rules are
listed under them, so an operator sees what is watched when nothing is open.

| kind                        | value and threshold shown as                            |
|-----------------------------|---------------------------------------------------------|
| `delivery_rate_below/_drop` | a rate in %, the rate it opens under                    |
| `ttr_p90_above`             | the p90 in s or min, the limit                          |
| `*_growing`                 | the count now, the count a window before                |
| `sink_lagging`              | minutes of lag, the limit                               |
| `account_paused`            | none: the message says why                              |

A delivery alert links to the Analytics page with its rule's filters, its group's
values and its window: from the start of the first hour the evaluator read when it
opened, to when it resolved (or now).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.alerts.settings import DELIVERY_KINDS, GROWING_KINDS, AlertRule
from dlrhub.console.analytics import duration, percent
from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import STORE_UNREADABLE, render
from dlrhub.receiver.alerts_api import STATES
from dlrhub.receiver.auth import Principal
from dlrhub.receiver.query_api import MAX_LIMIT, BadQuery, whole_number
from dlrhub.store import StoreUnavailable
from dlrhub.store.alerts_sql import AlertRecord, AlertState, SQLAlerts

DEFAULT_LIMIT = 100
CHOICES = (("all", "Open and resolved"), ("open", "Open"), ("resolved", "Resolved"))
RATES = frozenset({"delivery_rate_below", "delivery_rate_drop"})
HOUR = timedelta(hours=1)
UNKNOWN = "unknown"  # a group's empty breakdown value, as `alerts.evaluate.group_label` writes it
WANTED: dict[str, AlertState | None] = {"all": None, **{state: state for state in STATES}}


def measured(kind: str, value: float | None) -> str:
    """A value or a threshold in its kind's unit."""
    if value is None:
        return "—"
    if kind in RATES:
        return percent(value)
    if kind == "ttr_p90_above":
        return duration(value)
    if kind == "sink_lagging":
        return f"{value:g} min"
    return f"{value:g}"


def compared(kind: str) -> str:
    """What the threshold column means for a kind (the value is over or under it)."""
    if kind in GROWING_KINDS:
        return "a window ago"
    if kind in RATES:
        return "opens under"
    return "opens over"


def lasted(seconds: float) -> str:
    """1 d 2 h, 3 h 5 min, 1 h, 12 min, 40 s: how long an alert was open, a window."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def group_values(group: str) -> dict[str, str]:
    """`provider=nrs360,country=ES` -> {"provider": "nrs360", "country": "ES"}."""
    pairs = (part.partition("=") for part in group.split(",") if part)
    return {name: value for name, _, value in pairs}


def link_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analytics_link(rule: AlertRule, alert: AlertRecord) -> str:
    """The Analytics page over the alert's window, with the rule's filters and the
    group's values (the group's value wins: it is one of the rule's). A value the store
    could not tell (`unknown` in the group) has no filter on that page: left out."""
    start = alert.opened_at.replace(minute=0, second=0, microsecond=0)
    start -= timedelta(seconds=rule.span) - HOUR  # the window's whole hours, the running one last
    params: dict[str, str] = {"from": link_time(start)}
    if alert.resolved_at is not None:
        ended = alert.resolved_at
        if ended.microsecond:  # the next whole second: the hour it resolved in stays in
            ended = ended.replace(microsecond=0) + timedelta(seconds=1)
        params["to"] = link_time(ended)
    params.update({name: ",".join(values) for name, values in rule.filters})
    params.update(
        {name: value for name, value in group_values(alert.group).items() if value != UNKNOWN}
    )
    return "/console/analytics?" + urlencode(params)


def alert_row(alert: AlertRecord, rules: dict[str, AlertRule], now: datetime) -> dict[str, Any]:
    rule = rules.get(alert.rule)
    ended = alert.resolved_at or now
    link = None
    if rule is not None and rule.kind in DELIVERY_KINDS and rule.kind == alert.kind:
        link = analytics_link(rule, alert)
    return {
        "id": alert.id,
        "rule": alert.rule,
        "kind": alert.kind,
        "group": alert.group,
        "opened_at": alert.opened_at,
        "resolved_at": alert.resolved_at,
        "lasted": lasted((ended - alert.opened_at).total_seconds()),
        "value": measured(alert.kind, alert.value),
        "last_value": measured(alert.kind, alert.last_value),
        "threshold": measured(alert.kind, alert.threshold),
        "compared": compared(alert.kind),
        "message": alert.message,
        "resolve_message": alert.resolve_message,
        "analytics": link,
        "configured": rule is not None,
    }


def rule_row(rule: AlertRule) -> dict[str, Any]:
    watched = [f"{name} = {', '.join(values)}" for name, values in rule.filters]
    if rule.group_by:
        watched.append(f"one alert per {', '.join(rule.group_by)}")
    if rule.sinks:
        watched.append(f"sinks {', '.join(rule.sinks)}")
    if rule.accounts:
        watched.append(f"accounts {', '.join(rule.accounts)}")
    if rule.kind in DELIVERY_KINDS:
        watched.append(f"at least {rule.min_messages} settled messages")
    if rule.kind == "delivery_rate_drop":
        threshold = f"{rule.points:g} points under the 7 days before"
    else:
        threshold = measured(rule.kind, rule.threshold) if rule.threshold is not None else "—"
    has_window = rule.kind in DELIVERY_KINDS | GROWING_KINDS
    return {
        "name": rule.name,
        "kind": rule.kind,
        "threshold": threshold,
        "window": lasted(rule.span) if has_window else "—",
        "watched": watched,
    }


class AlertPages:
    """`alerts`: the alerts' tables as `GET /v1/alerts` reads them (its service opens
    them); `rules`: the configured `[[alerts]]`."""

    def __init__(self, site: ConsoleSite, alerts: SQLAlerts, rules: Sequence[AlertRule]) -> None:
        self.site = site
        self.alerts = alerts
        self.rules = {rule.name: rule for rule in rules}

    def routes(self) -> list[Route]:
        return [Route("/console/alerts", self.site.page(self.page), methods=["GET"])]

    async def page(self, request: Request, principal: Principal) -> Response:
        params = request.query_params
        chosen = params.get("state") or "all"
        context: dict[str, Any] = {
            "choices": CHOICES,
            "chosen": chosen,
            "limit": params.get("limit") or str(DEFAULT_LIMIT),
            "rules": [rule_row(rule) for rule in self.rules.values()],
            "error": None,
            "open": None,
            "resolved": None,
            "full": False,
        }
        try:
            if chosen not in WANTED:
                raise BadQuery("state must be open, resolved or all")
            limit = whole_number("limit", params.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
        except BadQuery as error:
            context["error"] = str(error)
            return self._render(request, context, principal, 400)
        try:
            found = await self.alerts.alerts(WANTED[chosen], limit)
        except StoreUnavailable:
            context["error"] = STORE_UNREADABLE
            return self._render(request, context, principal, 503)
        now = datetime.now(UTC)
        rows = [alert_row(alert, self.rules, now) for alert in found]
        if chosen in ("all", "open"):
            context["open"] = [row for row, a in zip(rows, found, strict=True) if a.state == "open"]
        if chosen in ("all", "resolved"):
            context["resolved"] = [
                row for row, a in zip(rows, found, strict=True) if a.state == "resolved"
            ]
        context["full"] = len(found) == limit
        return self._render(request, context, principal, 200)

    def _render(
        self, request: Request, context: dict[str, Any], principal: Principal, status: int
    ) -> Response:
        return render(
            request, "alerts.html", context, principal, section="alerts", status_code=status
        )
