"""What one message counts for: submitted, final, time to receipt, breakdown, engagement."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from dlrhub.analytics.facts import (
    HOUR_US,
    MessageFacts,
    advance,
    contribution,
    counts_as_message,
    engagement_kind,
)
from dlrhub.event import Event, EventType, Status, epoch_micros
from tests.analytics.stores import PLACE
from tests.payloads import T0
from tests.strategies import events as any_event


def event(status: Status | None, second: int | None, **fields: object) -> Event:
    return Event(
        id=f"e{status}{second}",
        source=str(fields.pop("source", "nrs360")),
        provider="nrs360",
        type=EventType.MESSAGE_STATUS if status else EventType.MESSAGE_ENGAGEMENT,
        received_at=T0 + timedelta(hours=5),
        message_id="m",
        status=status,
        occurred_at=None if second is None else T0 + timedelta(seconds=second),
        **fields,  # type: ignore[arg-type]
    )


def fold(*events: Event) -> MessageFacts:
    facts = None
    for one in events:
        facts = advance(facts, one, PLACE)
    assert facts is not None
    return facts


def test_submitted_is_the_accepted_time_even_when_seen_late() -> None:
    facts = fold(event(Status.SENT, 60), event(Status.DELIVERED, 70), event(Status.ACCEPTED, 5))
    assert (facts.submitted_us, facts.by_send) == (epoch_micros(T0) + 5_000_000, True)
    assert contribution(facts).latency_ms == 65_000


def test_without_an_accepted_event_the_first_seen_is_submitted() -> None:
    facts = fold(event(Status.DELIVERED, 90), event(Status.SENT, 30))
    assert facts.submitted_us == epoch_micros(T0) + 90_000_000
    assert contribution(facts).latency_ms == 0  # final at submitted


def test_the_final_status_is_the_latest_by_time_the_first_seen_at_a_tie() -> None:
    facts = fold(
        event(Status.ACCEPTED, 0),
        event(Status.FAILED, 50, provider_status="UNDELIV", extra={"error_code": 34}),
        event(Status.DELIVERED, 20),
        event(Status.EXPIRED, 50),
    )
    assert (facts.final_status, facts.reason, facts.error_code) == ("failed", "UNDELIV", "34")
    part = contribution(facts)
    assert part.reason == ("failed", "UNDELIV", "34")
    assert part.within == (0, 1, 1)  # 50 s: not within 5 s, within 60 s and 600 s


def test_a_message_counts_in_its_cohort_hour_and_without_receipt_is_pending() -> None:
    facts = fold(event(Status.ACCEPTED, 3_599), event(Status.SENT, 7_300))
    part = contribution(facts)
    assert part.hour_us == epoch_micros(T0)
    assert (part.final_status, part.latency_bucket, part.within) == (None, None, ())


def test_the_breakdown_is_the_first_value_each_event_gives() -> None:
    facts = fold(
        event(Status.ACCEPTED, 0, source="office"),
        event(Status.SENT, 1, sender="ACME", channel="sms", recipient="612345678"),
        event(Status.DELIVERED, 2, sender="Other", recipient="+573151234567"),
    )
    assert facts.breakdown() == ("nrs360", "office", "ACME", "sms", "ES", "Syma")


def test_without_occurred_at_the_receipt_time_counts() -> None:
    facts = fold(event(Status.ACCEPTED, None))
    assert facts.submitted_us == epoch_micros(T0) + 5 * HOUR_US


def test_engagement_counts_by_the_providers_word() -> None:
    assert engagement_kind(event(None, 0, provider_status="Click")) == "click"
    assert engagement_kind(event(None, 0)) == "engagement"
    assert engagement_kind(event(Status.DELIVERED, 0)) is None
    assert not counts_as_message(event(None, 0))


@given(st.lists(any_event, min_size=1, max_size=6))
def test_any_events_fold_without_raising(events: list[Event]) -> None:
    facts = None
    for one in events:
        if counts_as_message(one):
            facts = advance(facts, one, PLACE)
    if facts is not None:
        part = contribution(facts)
        assert part.latency_ms >= 0 and part.hour_us % HOUR_US == 0
