"""The figures of a group of messages, from the rollups' sums (docs/analytics.md).

`DeliveryQuery` is what `GET /v1/analytics/delivery` and `dlrhub analytics` ask;
`Sums` is what the store adds up for one group; `figures` turns them into the
measures: counts, delivery rates, time-to-receipt percentiles and shares,
failure reasons and engagement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from dlrhub.analytics.facts import BREAKDOWN, SETTLED, WITHIN_SECONDS
from dlrhub.analytics.histogram import percentile

Bucket = Literal["hour", "day"]
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
MAX_REASONS = 20  # per group, the most frequent first


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    from_us: int  # cohorts submitted in [from_us, to_us), whole hours
    to_us: int
    group_by: tuple[str, ...] = ()  # of BREAKDOWN
    bucket: Bucket | None = None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (breakdown, values it may take)

    def __post_init__(self) -> None:
        unknown = [name for name in self.group_by if name not in BREAKDOWN]
        unknown += [name for name, _ in self.filters if name not in BREAKDOWN]
        if unknown:
            raise ValueError(f"not a breakdown: {', '.join(unknown)}")


@dataclass(slots=True)
class Sums:
    """What a group's rollup rows add up to."""

    counters: dict[str, int] = field(default_factory=dict)  # dlrhub/store/rollups.py COUNTERS
    latency: dict[int, int] = field(default_factory=dict)  # histogram bucket -> messages
    reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    engagement: Counter[str] = field(default_factory=Counter)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def figures(sums: Sums) -> dict[str, Any]:
    """The measures of one group, as the API answers them (times in seconds)."""
    counts = sums.counters
    messages = counts.get("messages", 0)
    by_status = {status: counts.get(status, 0) for status in SETTLED}
    settled = sum(by_status.values())
    times: dict[str, float | None] = {}
    for name, fraction in PERCENTILES:
        value = percentile(sums.latency, fraction)
        times[name] = None if value is None else round(value / 1000, 4)
    within = {
        f"within_{seconds}s": _share(counts.get(f"within_{seconds}s", 0), settled)
        for seconds in WITHIN_SECONDS
    }
    reasons = [
        {"status": status, "provider_status": reason, "error_code": code, "count": count}
        for (status, reason, code), count in sorted(
            sums.reasons.items(), key=lambda item: (-item[1], item[0])
        )[:MAX_REASONS]
        if count > 0
    ]
    return {
        "messages": messages,
        **by_status,
        "pending": messages - settled,
        "delivery_rate": _share(by_status["delivered"], settled),
        "delivery_rate_of_submitted": _share(by_status["delivered"], messages),
        "time_to_receipt": {
            **times,
            "mean": round(counts.get("latency_ms_sum", 0) / settled / 1000, 4) if settled else None,
            **within,
        },
        "failure_reasons": reasons,
        "engagement": dict(sorted((kind, n) for kind, n in sums.engagement.items() if n)),
    }
