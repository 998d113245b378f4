"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.callbacks = Counter(
            "dlrhub_callbacks",
            "Provider callbacks received, by source, route kind and outcome.",
            ["source", "kind", "outcome"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "dlrhub_ingest_seconds",
            "Time from request start to durable answer, for stored callbacks.",
            ["kind"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
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

    def observe_commit(self, size: int) -> None:
        self.commit_batch_size.observe(size)
