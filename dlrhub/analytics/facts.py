"""The measures, defined once: what a message counts for, from its events in log order.

- A message is a `message.status` event's (provider, message_id), as in
  `/v1/messages`. Its breakdown (source, sender, channel, recipient's country
  and operator) is the first value its events give for each.
- Submitted: the time of its `accepted` event (the send, for messages dlrhub
  sent) if it has one, else of the first event seen for it, even if that one
  is already final. Times are `occurred_at`, else `received_at`.
- Final: its terminal status (delivered, undelivered, failed, rejected,
  expired) as the message state has it: the latest terminal event by time,
  the first seen at equal times. Time to receipt = final time - submitted.
- A message counts in the hour it was submitted (its cohort): a late receipt
  changes that past hour's figures, an `accepted` event seen late moves it.
- Engagement events (clicks, opens, unsubscribes) count in the hour they
  happened, by the provider's word for them.

`advance` folds one event into a message's facts; `Contribution` is what those
facts add to the rollups. The store, following the log a page at a time,
subtracts a message's old contribution and adds the new one, and `rebuild`
folds the same events in the same order, so both give the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from dlrhub.analytics.histogram import bucket_of
from dlrhub.event import Event, EventType, Status, epoch_micros

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
SETTLED = ("delivered", "undelivered", "failed", "rejected", "expired")
WITHIN_SECONDS = (5, 60, 600)  # the shares of time to receipt the figures give

Place = Callable[[str | None, str], tuple[str, str]]  # (recipient, source) -> country, operator


@dataclass(frozen=True, slots=True)
class MessageFacts:
    provider: str
    message_id: str
    source: str
    sender: str
    channel: str
    country: str
    operator: str
    submitted_us: int
    by_send: bool  # submitted is an `accepted` event's time
    final_status: str | None = None
    final_us: int = 0
    reason: str = ""  # the provider's status word of the final event, if not delivered
    error_code: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.provider, self.message_id

    def breakdown(self) -> Breakdown:
        return (self.provider, self.source, self.sender, self.channel, self.country, self.operator)


# provider, source, sender, channel, country, operator
Breakdown = tuple[str, str, str, str, str, str]
BREAKDOWN = ("provider", "source", "sender", "channel", "country", "operator")


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one message adds to its cohort hour's rollup row (the store adds them up)."""

    hour_us: int
    breakdown: Breakdown
    final_status: str | None
    latency_bucket: int | None
    within: tuple[int, ...]  # 1 per WITHIN_SECONDS bound the time to receipt is within
    latency_ms: int
    reason: tuple[str, str, str] | None  # (status, provider status word, error code)


def counts_as_message(event: Event) -> bool:
    return (
        event.type is EventType.MESSAGE_STATUS
        and event.message_id is not None
        and event.status is not None
    )


def advance(facts: MessageFacts | None, event: Event, place: Place) -> MessageFacts:
    """`facts` after `event` (one that `counts_as_message`), in log order."""
    assert event.message_id is not None and event.status is not None
    at = epoch_micros(event.ordering_time)
    accepted = event.status is Status.ACCEPTED
    if facts is None:
        country, operator = place(event.recipient, event.source)
        facts = MessageFacts(
            provider=event.provider,
            message_id=event.message_id,
            source=event.source,
            sender=event.sender or "",
            channel=event.channel or "",
            country=country,
            operator=operator,
            submitted_us=at,
            by_send=accepted,
        )
    else:
        changes: dict[str, object] = {}
        if not facts.sender and event.sender:
            changes["sender"] = event.sender
        if not facts.channel and event.channel:
            changes["channel"] = event.channel
        if not facts.country and not facts.operator and event.recipient:
            country, operator = place(event.recipient, facts.source)
            if country or operator:
                changes["country"], changes["operator"] = country, operator
        if accepted and not facts.by_send:
            changes["submitted_us"], changes["by_send"] = at, True
        if changes:
            facts = replace(facts, **changes)  # type: ignore[arg-type]
    if event.status.is_final and (facts.final_status is None or at > facts.final_us):
        error_code = event.extra.get("error_code")
        delivered = event.status is Status.DELIVERED
        facts = replace(
            facts,
            final_status=event.status.value,
            final_us=at,
            reason="" if delivered else (event.provider_status or ""),
            error_code="" if delivered or error_code is None else str(error_code)[:64],
        )
    return facts


def contribution(facts: MessageFacts) -> Contribution:
    hour_us = facts.submitted_us // HOUR_US * HOUR_US
    if facts.final_status is None:
        return Contribution(hour_us, facts.breakdown(), None, None, (), 0, None)
    latency_ms = max(0, (facts.final_us - facts.submitted_us) // 1000)
    within = tuple(int(latency_ms <= bound * 1000) for bound in WITHIN_SECONDS)
    reason = (
        None
        if facts.final_status == "delivered"
        else (facts.final_status, facts.reason[:200], facts.error_code)
    )
    return Contribution(
        hour_us,
        facts.breakdown(),
        facts.final_status,
        bucket_of(latency_ms),
        within,
        latency_ms,
        reason,
    )


def engagement_kind(event: Event) -> str | None:
    """The provider's word for an engagement event (click, open...), lower case."""
    if event.type is not EventType.MESSAGE_ENGAGEMENT:
        return None
    return (event.provider_status or "engagement").lower()[:64]
