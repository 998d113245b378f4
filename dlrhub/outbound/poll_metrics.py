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
        self.bad_answers = Counter(
            "dlrhub_poller_bad_answers",
            "Provider answers that could not be read (broken JSON, HTML), by account.",
            ["account"],
            registry=None,
        )
        self.last_bad_answer = Gauge(
            "dlrhub_poller_last_bad_answer",
            "Unix time of the account's last unreadable answer; `error` says what was wrong.",
            ["account", "error"],
            registry=None,
        )
        self._last_errors: dict[str, str] = {}
        self._collectors = (
            self.polls,
            self.changes,
            self.stopped,
            self.paused,
            self.bad_answers,
            self.last_bad_answer,
        )
        self._registered: list[CollectorRegistry] = []

    def note_bad_answer(self, account: str, error: str, at: float) -> None:
        """Count an unreadable answer; one `last_bad_answer` series per account, the latest."""
        self.bad_answers.labels(account).inc()
        previous = self._last_errors.get(account)
        if previous is not None and previous != error:
            self.last_bad_answer.remove(account, previous)
        self._last_errors[account] = error
        self.last_bad_answer.labels(account, error).set(at)

    def register(self, registry: CollectorRegistry) -> None:
        if registry not in self._registered:
            for collector in self._collectors:
                registry.register(collector)
            self._registered.append(registry)
