"""The rollups recomputed from an event list the plain way, to check the store's against.

Written from facts.py's docstring, not its code: group the events by message,
read each message's submitted and final time off its whole event list, and
count. Events are in log order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from dlrhub.analytics.facts import Place
from dlrhub.analytics.histogram import bucket_of
from dlrhub.event import Event, EventType, Status, epoch_micros
from tests.analytics.stores import Tables

HOUR = 3_600_000_000
GRAINS = {"hour": HOUR, "day": 24 * HOUR}
SETTLED = ["delivered", "undelivered", "failed", "rejected", "expired"]


def at(event: Event) -> int:
    return epoch_micros(event.occurred_at or event.received_at)


Facts = dict[tuple[str, str], dict[str, object]]


def message_facts(events: Sequence[Event], place: Place) -> Facts:
    """Per message: its breakdown, submitted time and final status, time and reason."""
    by_message: defaultdict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        if event.type is EventType.MESSAGE_STATUS and event.message_id is not None and event.status:
            by_message[(event.provider, event.message_id)].append(event)
    facts = {}
    for (provider, message_id), mine in by_message.items():
        source = mine[0].source
        placed = [place(e.recipient, source) for e in mine if e.recipient]
        country, operator = next((p for p in placed if p != ("", "")), ("", ""))
        accepted = [at(e) for e in mine if e.status is Status.ACCEPTED]
        submitted = accepted[0] if accepted else at(mine[0])
        finals = [e for e in mine if e.status is not None and e.status.is_final]
        final = None
        if finals:
            latest = max(at(e) for e in finals)
            final = next(e for e in finals if at(e) == latest)  # the first seen at that time
        facts[(provider, message_id)] = {
            "breakdown": (
                provider,
                source,
                next((e.sender for e in mine if e.sender), ""),
                next((e.channel for e in mine if e.channel), ""),
                country,
                operator,
            ),
            "submitted": submitted,
            "final": final,
        }
    return facts


def expected_tables(events: Sequence[Event], place: Place) -> Tables:
    rollups: defaultdict[tuple[object, ...], list[int]] = defaultdict(lambda: [0] * 10)
    latency: Counter[tuple[object, ...]] = Counter()
    reasons: Counter[tuple[object, ...]] = Counter()
    engagement: Counter[tuple[object, ...]] = Counter()
    for facts in message_facts(events, place).values():
        submitted = facts["submitted"]
        final = facts["final"]
        assert isinstance(submitted, int)
        for grain, width in GRAINS.items():
            key = (grain, submitted // width * width, *facts["breakdown"])  # type: ignore[misc]
            row = rollups[key]
            row[0] += 1
            if isinstance(final, Event):
                assert final.status is not None
                milliseconds = max(0, (at(final) - submitted) // 1000)
                row[1 + SETTLED.index(final.status.value)] += 1
                for index, seconds in enumerate((5, 60, 600)):
                    row[6 + index] += milliseconds <= seconds * 1000
                row[9] += milliseconds
                latency[(*key, bucket_of(milliseconds))] += 1
                if final.status is not Status.DELIVERED:
                    code = final.extra.get("error_code")
                    reason = (final.status.value, final.provider_status or "", str(code or ""))
                    reasons[(*key, *reason)] += 1
    for event in events:
        if event.type is EventType.MESSAGE_ENGAGEMENT:
            kind = (event.provider_status or "engagement").lower()
            for grain, width in GRAINS.items():
                period = at(event) // width * width
                key = (grain, period, event.provider, event.source, event.channel or "", kind)
                engagement[key] += 1
    return {
        "delivery_rollups": {key: tuple(row) for key, row in rollups.items()},
        "delivery_latency": dict(latency),
        "delivery_reasons": dict(reasons),
        "engagement_rollups": dict(engagement),
    }
