"""Prometheus metrics of the poller, registered into the app's registry when embedded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PollMetrics:
    def __init__(self) -> None:
        self.polls = Counter(
            "dlrhub_poller_requests",
            "Status requests made, by account and outcome"
            " (answered, busy, unavailable, rejected, auth_error, bad_answer).",
            ["account", "outcome"],
            registry=None,
        )
        self.changes = Counter(
            "dlrhub_poller_status_changes",
            "Messages whose status changed in a poll (an event was stored).",
            ["account"],
            registry=None,
        )
        self.stopped = Counter(
            "dlrhub_poller_stopped",
            "Messages the poller stopped following, by reason.",
            ["account", "reason"],
            registry=None,
        )
        self.paused = Gauge(
            "dlrhub_poller_account_paused",
            "1 while an account is paused after an authentication error.",
            ["account"],
            registry=None,
        )
        self._collectors = (self.polls, self.changes, self.stopped, self.paused)
        self._registered: list[CollectorRegistry] = []

    def register(self, registry: CollectorRegistry) -> None:
        if registry not in self._registered:
            for collector in self._collectors:
                registry.register(collector)
            self._registered.append(registry)
