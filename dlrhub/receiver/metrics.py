"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

CALLBACKS = "dlrhub_callbacks"
CALLBACKS_HELP = "Provider callbacks received, by source, route kind and outcome."
CALLBACKS_LABELS = ("source", "kind", "outcome")
INGEST = "dlrhub_ingest_seconds"
INGEST_HELP = "Time from request start to durable answer, for stored callbacks."
INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_UPPER_BOUNDS = (*INGEST_BUCKETS, math.inf)
# "1.0", "+Inf": as prometheus_client writes them
_LE = tuple(floatToGoString(bound) for bound in _UPPER_BOUNDS)  # type: ignore[no-untyped-call]


class Metrics:
    """The app's metrics; the two counted on every request are plain Python.

    `count_callback` and `observe_ingest` add to dicts and lists and take no lock:
    they, and the `/metrics` answer that reads them, all run on the event loop's
    one thread. prometheus_client's `labels(...).inc()` / `.observe()` would take
    locks and make several calls per request for nothing.
    """

    def __init__(self, process_label: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self._callbacks: dict[tuple[str, str, str], int] = {}
        # kind -> a count per bucket of `_UPPER_BOUNDS` (not cumulative), then the sum
        self._ingest: dict[str, list[float]] = {}
        self.registry.register(_HotPathCollector(self))  # first, where the two stood before
        self.commit_batch_size = Histogram(
            "dlrhub_commit_batch_size",
            "Writes committed together in one store transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.quarantine_pending = Gauge(
            "dlrhub_quarantine_pending",
            "Quarantined callbacks waiting for reprocessing.",
            registry=self.registry,
        )
        if process_label is not None:  # one of several receiver processes on one port
            Gauge(
                "dlrhub_receiver_process",
                "1, labelled with the receiver process (of server.processes) that answered.",
                ["receiver"],
                registry=self.registry,
            ).labels(process_label).set(1)

    def count_callback(self, source: str, kind: str, outcome: str) -> None:
        key = (source, kind, outcome)
        self._callbacks[key] = self._callbacks.get(key, 0) + 1

    def observe_ingest(self, kind: str, seconds: float) -> None:
        row = self._ingest.get(kind)
        if row is None:
            row = self._ingest[kind] = _empty_row()
        if seconds == seconds:  # NaN: in no bucket, only in the sum, as prometheus_client
            row[bisect_left(_UPPER_BOUNDS, seconds)] += 1  # first bound >= seconds: le
        row[-1] += seconds

    def expect_ingest_kinds(self, kinds: Iterable[str]) -> None:
        """Export zero latency series for `kinds` before their first callback.

        As hooks.py did by creating the labelled children up front, so that a
        scrape sees every series from the start.
        """
        for kind in kinds:
            self._ingest.setdefault(kind, _empty_row())

    def observe_commit(self, size: int) -> None:
        self.commit_batch_size.observe(size)


def _empty_row() -> list[float]:
    return [0.0] * (len(_UPPER_BOUNDS) + 1)


class _HotPathCollector:
    """Exports `Metrics`' plain counts as prometheus_client would a Counter and a Histogram.

    Same names, help, label names and order, buckets, `_count` and `_sum`. The
    `_created` samples (when each series began) are dropped: nothing here uses them.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        """The names, so that the registry refuses another metric of the same name."""
        return [
            CounterMetricFamily(CALLBACKS, CALLBACKS_HELP, labels=CALLBACKS_LABELS),
            HistogramMetricFamily(INGEST, INGEST_HELP, labels=["kind"]),
        ]

    def collect(self) -> list[Metric]:
        metrics = self._metrics
        callbacks = CounterMetricFamily(CALLBACKS, CALLBACKS_HELP, labels=CALLBACKS_LABELS)
        for key, count in list(metrics._callbacks.items()):
            callbacks.add_metric(key, float(count))
        ingest = HistogramMetricFamily(INGEST, INGEST_HELP, labels=["kind"])
        for kind, row in list(metrics._ingest.items()):
            cumulative, buckets = 0.0, list[tuple[str, float]]()
            for le, in_bucket in zip(_LE, row[:-1], strict=True):  # `le` is cumulative
                cumulative += in_bucket
                buckets.append((le, cumulative))
            ingest.add_metric([kind], buckets, row[-1])
        return [callbacks, ingest]
