"""`[[alerts]]`: the rules, and `[alerting]`: how often they are evaluated (docs/alerts.md).

| kind                   | opens when (per group)                                | keys      |
|------------------------|-------------------------------------------------------|-----------|
| `delivery_rate_below`  | delivered / settled over the last `window` < `below`  | `below`   |
| `delivery_rate_drop`   | that rate is `points` percentage points or more under | `points`  |
|                        | the same hours of the 7 days before, summed (Plivo's) |           |
| `ttr_p90_above`        | time to receipt p90 over the last `window` > `seconds`| `seconds` |
| `quarantine_growing`   | more quarantine entries pending than `window` ago     |           |
| `dead_letters_growing` | more dead letters than `window` ago, per sink         |           |
| `account_paused`       | a poller account is paused (an authentication error)  |           |
| `sink_lagging`         | a sink's oldest undelivered event is over `minutes`   | `minutes` |

Delivery kinds read the rollups only (whole hours; `window` defaults to `"1h"`), skip
a group with fewer than `min_messages` settled messages (default 20: two messages
page nobody), take breakdown filters (`provider`, `source`, `sender`, `channel`,
`country`, `operator`: a value or a list) and `group_by` (a list of those) to evaluate
each group apart. Growing kinds compare with `window` ago (default `"10m"`). Sink
kinds take `sinks = [...]`, `account_paused` takes `accounts = [...]` (default: all).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from dlrhub.analytics.facts import BREAKDOWN
from dlrhub.settings_schema import (
    AtMost,
    Check,
    Name,
    Number,
    PositiveDuration,
    PositiveInt,
    parse_section,
)

Kind = Literal[
    "delivery_rate_below",
    "delivery_rate_drop",
    "ttr_p90_above",
    "quarantine_growing",
    "dead_letters_growing",
    "account_paused",
    "sink_lagging",
]
DELIVERY_KINDS = frozenset({"delivery_rate_below", "delivery_rate_drop", "ttr_p90_above"})
GROWING_KINDS = frozenset({"quarantine_growing", "dead_letters_growing"})
THRESHOLDS: dict[str, str] = {  # the key each kind's threshold is given in
    "delivery_rate_below": "below",
    "delivery_rate_drop": "points",
    "ttr_p90_above": "seconds",
    "sink_lagging": "minutes",
}
DEFAULT_WINDOW = {True: 3600.0, False: 600.0}  # delivery kinds, growing kinds
HOUR = 3600.0
Breakdown = Literal["provider", "source", "sender", "channel", "country", "operator"]


def _whole_hours(seconds: float) -> str | None:
    if seconds % HOUR == 0 and seconds <= 7 * 24 * HOUR:
        return None
    return 'must be whole hours up to 7 days ("1h", "3h", "1d"): the rollups are hourly'


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One `[[alerts]]` table; `problems` says which keys its kind needs and takes."""

    name: Name
    kind: Kind
    below: Annotated[Number, AtMost(1)] | None = None
    points: Annotated[Number, AtMost(100)] | None = None
    seconds: Number | None = None
    minutes: Number | None = None
    window: PositiveDuration | None = None
    min_messages: PositiveInt = 20
    provider: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    sender: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    operator: tuple[str, ...] = ()
    group_by: tuple[Breakdown, ...] = ()
    sinks: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    @property
    def span(self) -> float:
        """The window in seconds: given, or the kind's default."""
        if self.window is not None:
            return self.window
        return DEFAULT_WINDOW[self.kind in DELIVERY_KINDS]

    @property
    def threshold(self) -> float | None:
        key = THRESHOLDS.get(self.kind)
        value: float | None = getattr(self, key) if key else None
        return value

    @property
    def filters(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The breakdown filters, as `DeliveryQuery` takes them."""
        return tuple((name, getattr(self, name)) for name in BREAKDOWN if getattr(self, name))

    def problems(self) -> Iterator[tuple[str, str]]:
        needed = THRESHOLDS.get(self.kind)
        if needed is not None and getattr(self, needed) is None:
            yield needed, f"is required with kind {self.kind!r}"
        for key in THRESHOLDS.values():
            if key != needed and getattr(self, key) is not None:
                yield key, f"does not apply to kind {self.kind!r}"
        delivery = self.kind in DELIVERY_KINDS
        if not delivery:
            for key in (*BREAKDOWN, "group_by"):
                if getattr(self, key):
                    yield key, f"does not apply to kind {self.kind!r} (only to delivery kinds)"
        if delivery and self.window is not None and (problem := _whole_hours(self.window)):
            yield "window", problem
        if self.kind not in GROWING_KINDS | DELIVERY_KINDS and self.window is not None:
            yield "window", f"does not apply to kind {self.kind!r}"
        if self.sinks and self.kind not in ("sink_lagging", "dead_letters_growing"):
            yield "sinks", f"does not apply to kind {self.kind!r}"
        if self.accounts and self.kind != "account_paused":
            yield "accounts", f"does not apply to kind {self.kind!r}"
        if len(set(self.group_by)) != len(self.group_by):
            yield "group_by", "names a breakdown twice"


def read_alert(path: str, value: Any) -> AlertRule:
    """One `[[alerts]]` table; raises `ConfigErrors` with every problem in it."""
    return parse_section(AlertRule, value, path)


def _at_least_a_second(seconds: float) -> str | None:
    return None if seconds >= 1 else "must be 1s or more"


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    """`[alerting]`: how often the rules are evaluated (one process at a time)."""

    interval: Annotated[PositiveDuration, Check(_at_least_a_second)] = 60.0
