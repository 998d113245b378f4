"""Payloads several test packages build: 360NRS event forms, raw callbacks, status events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from dlrhub.event import Event, EventType, RawCallback, Status

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def event_form(event: str, message_id: str = "5f3a1c2b9d", **fields: str) -> str:
    data = {
        "id": message_id,
        "channel": "sms",
        "contactId": "48213",
        "campaignId": "9911",
        "campaignName": "Campaña de otoño",
        "event": event,
        "eventDate": "2026-11-20 10:15:00",
        **fields,
    }
    return urlencode(data)


def raw(
    body: str, source: str = "nrs360", received_at: datetime = T0, provider: str = "nrs360"
) -> RawCallback:
    """A received callback whose body (its dedupe key) is `body`."""
    return RawCallback(
        source=source,
        provider=provider,
        kind="events",
        method="POST",
        query="token=[REDACTED]",
        content_type="application/x-www-form-urlencoded",
        body=body.encode(),
        received_at=received_at,
    )


def status_event(message_id: str, status: Status, minute: int, event_id: str = "") -> Event:
    return Event(
        id=event_id or f"ev-{message_id}-{status.value}-{minute}-{random.random()}",
        source="nrs360",
        provider="nrs360",
        type=EventType.MESSAGE_STATUS,
        received_at=T0,
        message_id=message_id,
        status=status,
        provider_status=status.value,
        occurred_at=T0 + timedelta(minutes=minute),
    )
