"""An alert's opening or resolution as an event of the log: type `dlrhub.alert`.

Source and provider are `dlrhub`; `extra` holds what a receiver needs to act:

| key           | value                                                        |
|---------------|--------------------------------------------------------------|
| `alert_id`    | the episode's id (`GET /v1/alerts`)                          |
| `rule`        | the rule's name; `kind` its kind                             |
| `state`       | `open` or `resolved`                                         |
| `group`       | `provider=nrs360,country=ES`, `sink=slack`, ... ("" if none) |
| `value`       | what was measured; `threshold` what it was compared with     |
| `message`     | one sentence saying what happened                            |
| `opened_at`   | when it opened; `resolved_at` when it resolved (or null)     |

The raw callback stored with it (kind `alert`) is the same JSON; its dedupe key
follows from the episode's id and the transition, so writing it again after a
failure is answered as a duplicate, never stored twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson

from dlrhub.event import Event, EventType, JSONValue, RawCallback, format_time
from dlrhub.ids import uuid7
from dlrhub.store.alerts_sql import AlertRecord
from dlrhub.store.base import Accept

ALERT_SOURCE = "dlrhub"


def alert_extra(alert: AlertRecord, state: Literal["open", "resolved"]) -> dict[str, JSONValue]:
    resolved = state == "resolved"
    return {
        "alert_id": alert.id,
        "rule": alert.rule,
        "kind": alert.kind,
        "state": state,
        "group": alert.group,
        "value": alert.last_value if resolved else alert.value,
        "threshold": alert.threshold,
        "message": (alert.resolve_message or alert.message) if resolved else alert.message,
        "opened_at": format_time(alert.opened_at),
        "resolved_at": format_time(alert.resolved_at) if resolved and alert.resolved_at else None,
    }


def alert_write(alert: AlertRecord, state: Literal["open", "resolved"], now: datetime) -> Accept:
    """The write that puts `alert`'s transition to `state` in the log."""
    extra = alert_extra(alert, state)
    body = orjson.dumps(extra, option=orjson.OPT_SORT_KEYS)
    raw = RawCallback(
        source=ALERT_SOURCE,
        provider=ALERT_SOURCE,
        kind="alert",
        method="POST",
        query="",
        content_type="application/json",
        body=body,
        received_at=now,
    )
    happened = alert.resolved_at if state == "resolved" and alert.resolved_at else alert.opened_at
    event = Event(
        id=uuid7(happened, f"alert\x00{alert.id}\x00{state}".encode()),
        source=ALERT_SOURCE,
        provider=ALERT_SOURCE,
        type=EventType.ALERT,
        received_at=now,
        occurred_at=happened,
        extra=extra,
    )
    return Accept(raw, [event])
