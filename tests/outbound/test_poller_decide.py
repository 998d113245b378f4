"""`decide` and its steps, without a provider: one case per rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlrhub.event import Event, EventType, Status
from dlrhub.outbound.poller import (
    STOP_RULES,
    Progress,
    advance_status,
    count_misses,
    decide,
    events_about,
    fresh_events,
    last_event_time,
    latest_status,
    stop_reason,
)
from dlrhub.outbound.settings import AccountConfig, PollerConfig
from dlrhub.store.tracking import TrackedMessage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ACCOUNT = AccountConfig(name="uvx", provider="uvox", base_url="http://x", stop_statuses=("011",))
CONFIG = PollerConfig(first_interval=10, multiplier=2, max_interval=3600, jitter=0)


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def tracked(**fields: Any) -> TrackedMessage:
    row = TrackedMessage(
        id=7,
        account="uvx",
        provider="uvox",
        message_id="m-1",
        created_at=T0,
        recipient=None,
        correlation_id=None,
        channel="sms",
        sending_id=None,
        status=Status.ACCEPTED,
        provider_status="009",
        last_event_at=None,
        next_poll_at=None,
        attempts=0,
        misses=0,
        stopped_reason=None,
        stopped_at=None,
    )
    return dataclasses.replace(row, **fields)


def status_event(
    status: Status,
    provider_status: str,
    *,
    at: datetime | None = None,
    message_id: str = "m-1",
    **extra: str,
) -> Event:
    return Event(
        id=f"{message_id}-{provider_status}-{at}",
        source="uvx",
        provider="uvox",
        type=EventType.MESSAGE_STATUS,
        received_at=minute(30),
        message_id=message_id,
        status=status,
        provider_status=provider_status,
        occurred_at=at,
        extra=dict(extra),
    )


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (Progress(Status.DELIVERED, "013", 0), "final_status"),
        (Progress(Status.QUEUED, "011", 0), "provider_final"),
        (Progress(Status.QUEUED, "012", CONFIG.unknown_id_limit), "unknown_id"),
        (Progress(Status.QUEUED, "012", CONFIG.unknown_id_limit - 1), None),
        (Progress(None, None, 0), None),
    ],
)
def test_each_stop_rule(progress: Progress, expected: str | None) -> None:
    assert stop_reason(progress, ACCOUNT, CONFIG) == expected


def test_stop_rules_are_tried_in_order() -> None:
    assert [reason for reason, _ in STOP_RULES] == ["final_status", "provider_final", "unknown_id"]
    # All three hold: the first one names the reason.
    everything = Progress(Status.FAILED, "011", CONFIG.unknown_id_limit)
    assert stop_reason(everything, ACCOUNT, CONFIG) == "final_status"
    assert stop_reason(Progress(Status.SENT, "011", 99), ACCOUNT, CONFIG) == "provider_final"


def test_events_about_keeps_only_this_rows_message() -> None:
    mine = status_event(Status.SENT, "013")
    other = status_event(Status.SENT, "013", message_id="m-2")
    assert events_about(tracked(), [other, mine]) == [mine]


def test_latest_status_is_highest_in_the_lattice_then_latest_in_time() -> None:
    early_sent = status_event(Status.SENT, "013", at=minute(1))
    late_queued = status_event(Status.QUEUED, "012", at=minute(5))
    late_sent = status_event(Status.SENT, "014", at=minute(3))
    assert latest_status([early_sent, late_queued, late_sent]) == late_sent
    assert latest_status([]) is None


@pytest.mark.parametrize(
    ("row_status", "latest", "expected"),
    [
        (Status.ACCEPTED, (Status.SENT, "013"), (Status.SENT, "013")),  # up the lattice
        (Status.SENT, (Status.QUEUED, "012"), (Status.SENT, "012")),  # never down
        (Status.SENT, None, (Status.SENT, "009")),  # no status event: row unchanged
    ],
)
def test_advance_status(
    row_status: Status, latest: tuple[Status, str] | None, expected: tuple[Status, str]
) -> None:
    event = status_event(*latest) if latest else None
    assert advance_status(tracked(status=row_status), event) == expected


@pytest.mark.parametrize(
    ("mine", "expected"),
    [
        ([], 3),  # nothing about the id
        ([status_event(Status.UNKNOWN, "010", reason="unknown_id")], 3),  # said unknown
        ([status_event(Status.QUEUED, "012", reason="no_credit")], 0),  # known: reset
    ],
)
def test_count_misses(mine: list[Event], expected: int) -> None:
    assert count_misses(tracked(misses=2), mine) == expected


def test_fresh_events_are_newer_than_the_last_seen() -> None:
    row = tracked(last_event_at=minute(2))
    old, same, new = (status_event(Status.SENT, "013", at=minute(n)) for n in (1, 2, 3))
    assert fresh_events(row, [old, same, new], new) == [new]


@pytest.mark.parametrize(
    ("latest", "stored"),
    [
        (status_event(Status.QUEUED, "012"), True),  # provider status changed
        (status_event(Status.SENT, "009"), True),  # status moved up
        (status_event(Status.ACCEPTED, "009"), False),  # nothing new
    ],
)
def test_an_untimed_status_event_is_stored_when_it_changes_something(
    latest: Event, stored: bool
) -> None:
    assert fresh_events(tracked(), [latest], latest) == ([latest] if stored else [])


def test_last_event_time_keeps_the_latest_seen() -> None:
    row = tracked(last_event_at=minute(4))
    assert last_event_time(row, [status_event(Status.SENT, "013", at=minute(2))]) == minute(4)
    assert last_event_time(row, [status_event(Status.SENT, "013", at=minute(6))]) == minute(6)
    assert last_event_time(tracked(), [status_event(Status.SENT, "013")]) is None


def test_decide_puts_the_steps_together() -> None:
    row = tracked(attempts=1, misses=1)
    sent = status_event(Status.SENT, "013", at=minute(1))
    outcome, fresh = decide(row, [sent], minute(5), ACCOUNT, CONFIG)
    assert fresh == [sent]
    assert (outcome.status, outcome.provider_status, outcome.last_event_at) == (
        Status.SENT,
        "013",
        minute(1),
    )
    assert (outcome.attempts, outcome.misses, outcome.stopped_reason) == (2, 0, None)
    assert outcome.next_poll_at == minute(5) + timedelta(seconds=40)  # 10 s * 2**2


def test_decide_stops_without_a_next_poll() -> None:
    outcome, fresh = decide(tracked(misses=2), [], minute(5), ACCOUNT, CONFIG)
    assert fresh == []
    assert (outcome.misses, outcome.stopped_reason, outcome.next_poll_at) == (3, "unknown_id", None)
