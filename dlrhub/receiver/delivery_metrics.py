"""Delivery rate and time to receipt per provider on `/metrics`, from the delivery rollups.

| metric                           | labels                   | what                          |
|----------------------------------|--------------------------|-------------------------------|
| `dlrhub_delivery_rate`           | provider, window         | delivered / settled, of the   |
|                                  |                          | messages submitted in window  |
| `dlrhub_delivery_messages`       | provider, window, status | those messages by final       |
|                                  |                          | status, and `pending`         |
| `dlrhub_time_to_receipt_seconds` | provider                 | their time to receipt, `24h`  |

A window is whole rollup hours (`dlrhub/analytics/facts.py`: a message counts in
the hour it was submitted): `1h` is the current hour and the one before it, `24h`
the current hour and the 24 before. A provider with no settled message in a
window has no `dlrhub_delivery_rate` series there (no 0 to alert on by mistake).

Prometheus collectors are synchronous, so `/metrics` awaits `refresh` before
rendering: two rollup reads (`delivery_sums` grouped by provider, a few hundred
rows), at most once per `REFRESH_SECONDS` whoever scrapes, and given up after
`READ_TIMEOUT_SECONDS`; when the store does not answer, the last values stay.

The histogram's buckets are the rollups' log-scale ones (`dlrhub/analytics/histogram.py`)
counted under the first `le` at or above their middle, so a bucket count is
within 4.9 % of the time it stands for; `_sum` and `_count` are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dlrhub.analytics.facts import HOUR_US, SETTLED
from dlrhub.analytics.figures import DeliveryQuery, Sums
from dlrhub.analytics.histogram import representative
from dlrhub.store import Store, StoreUnavailable

WINDOWS = (("1h", 1), ("24h", 24))  # label, hours before the current one
HISTOGRAM_WINDOW = "24h"
LE_SECONDS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600)
REFRESH_SECONDS = 15.0
READ_TIMEOUT_SECONDS = 5.0

RATE = "dlrhub_delivery_rate"
RATE_HELP = "Delivered of settled messages submitted in the window (whole hours), per provider."
MESSAGES = "dlrhub_delivery_messages"
MESSAGES_HELP = "Messages submitted in the window (whole hours), by final status or pending."
TIME_TO_RECEIPT = "dlrhub_time_to_receipt_seconds"
TIME_TO_RECEIPT_HELP = (
    "Submission to final receipt of messages submitted in the last 24 whole hours, per provider."
)
_LE = [floatToGoString(bound) for bound in (*LE_SECONDS, math.inf)]  # type: ignore[no-untyped-call]


class DeliveryMetrics(Collector):
    """The rollups' last figures per provider; `refresh` reads them, `collect` exports them."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._sums: dict[str, dict[str, Sums]] = {}  # window -> provider -> sums
        self._read_at = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the windows' sums unless read within `REFRESH_SECONDS` (scrapes at once: once)."""
        async with self._lock:
            if time.monotonic() - self._read_at < REFRESH_SECONDS:
                return
            self._read_at = time.monotonic()  # a failing store is asked again only later
            # On failure the last values stay; /readyz reports the store.
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                self._sums = await asyncio.wait_for(self._read(), READ_TIMEOUT_SECONDS)

    async def _read(self) -> dict[str, dict[str, Sums]]:
        now_us = int(self.clock() * 1_000_000)
        current_hour = now_us // HOUR_US * HOUR_US
        found: dict[str, dict[str, Sums]] = {}
        for window, hours in WINDOWS:
            query = DeliveryQuery(
                current_hour - hours * HOUR_US, current_hour + HOUR_US, group_by=("provider",)
            )
            groups = await self.store.delivery_sums(query)
            found[window] = {str(key[1]): sums for key, sums in groups.items()}
        return found

    def describe(self) -> list[Metric]:
        return [
            GaugeMetricFamily(RATE, RATE_HELP, labels=["provider", "window"]),
            GaugeMetricFamily(MESSAGES, MESSAGES_HELP, labels=["provider", "window", "status"]),
            HistogramMetricFamily(TIME_TO_RECEIPT, TIME_TO_RECEIPT_HELP, labels=["provider"]),
        ]

    def collect(self) -> Iterator[Metric]:
        rate = GaugeMetricFamily(RATE, RATE_HELP, labels=["provider", "window"])
        messages = GaugeMetricFamily(
            MESSAGES, MESSAGES_HELP, labels=["provider", "window", "status"]
        )
        for window, by_provider in self._sums.items():
            for provider, sums in sorted(by_provider.items()):
                counts = sums.counters
                settled = sum(counts.get(status, 0) for status in SETTLED)
                if settled:
                    rate.add_metric([provider, window], counts.get("delivered", 0) / settled)
                for status in SETTLED:
                    messages.add_metric([provider, window, status], counts.get(status, 0))
                pending = counts.get("messages", 0) - settled
                messages.add_metric([provider, window, "pending"], pending)
        histogram = HistogramMetricFamily(
            TIME_TO_RECEIPT, TIME_TO_RECEIPT_HELP, labels=["provider"]
        )
        for provider, sums in sorted(self._sums.get(HISTOGRAM_WINDOW, {}).items()):
            seconds_sum = sums.counters.get("latency_ms_sum", 0) / 1000
            histogram.add_metric([provider], cumulative_buckets(sums.latency), seconds_sum)
        yield rate
        yield messages
        yield histogram


def cumulative_buckets(latency: Mapping[int, int]) -> list[tuple[str, float]]:
    """Prometheus `le` buckets (cumulative, `+Inf` last) of a rollup histogram."""
    per_le = [0] * (len(LE_SECONDS) + 1)
    for bucket, count in latency.items():
        seconds = representative(bucket) / 1000
        index = next((i for i, bound in enumerate(LE_SECONDS) if seconds <= bound), -1)
        per_le[index] += count
    total, buckets = 0, []
    for le, count in zip(_LE, per_le, strict=True):
        total += count
        buckets.append((le, float(total)))
    return buckets
