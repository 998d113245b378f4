"""Backfill a 360NRS sending from its events report (CSV), without duplicates.

When the receiver was down longer than 360NRS's retry window (about 15
minutes, see providers/360nrs-api.txt ~l.8027), the events report of a sending
still has every event. Each CSV row is stored as its own raw payload (kind
`report`, the row with its header as body), so backfilling the same window
twice stores nothing new (the log deduplicates raw payloads). The report has
no message id: the row's message is found in the tracking table by sending id
and phone; a row whose event is already in the log for that message (same
event name and time, e.g. from a callback) is skipped. Rows of messages dlrhub
did not send are stored without a message id.

Times are read with the account's hook `source` options (its `timezone`), the
same way the callbacks were, so that the comparison holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from dlrhub.event import Event
from dlrhub.normalizers import NormalizeError
from dlrhub.normalizers.exchange import MESSAGE_ID_PARAM
from dlrhub.outbound.errors import ProviderAnswerError
from dlrhub.outbound.sending import Outbound, SendRefused
from dlrhub.providers.nrs360.answers import normalize_events_report, report_row_csv, report_rows
from dlrhub.providers.nrs360.client import Nrs360Client
from dlrhub.store import Accept, EventFilter, Quarantine
from dlrhub.store.base import WriteResult

MAX_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class BackfillResult:
    rows: int
    stored: int
    known: int
    quarantined: int


def _identity(event: Event) -> tuple[str, str, datetime | None]:
    return (
        event.message_id or f"phone:{event.recipient}",
        (event.provider_status or "").strip().lower(),
        event.occurred_at.replace(microsecond=0) if event.occurred_at else None,
    )


async def backfill_sending(
    outbound: Outbound, account_name: str, sending_id: str, after: datetime, before: datetime
) -> BackfillResult:
    account = outbound.account(account_name)
    client = outbound.client(account)
    if not isinstance(client, Nrs360Client):
        raise SendRefused("bad_request", f"account {account.name!r} is not a 360NRS account")
    source = outbound.config.source(account.setting("source") or "")
    options = source.options if source is not None else account.options
    exchange = await client.events_report(sending_id, after, before)
    try:
        rows = report_rows(exchange.body)
    except NormalizeError as error:
        await outbound.store.write(Quarantine(exchange.raw(account, "report"), str(error)))
        raise ProviderAnswerError(account.name, account.provider, str(error)) from None
    stored = known = quarantined = 0
    seen: dict[str, set[tuple[str, str, datetime | None]]] = {}
    for row in rows:
        phone = (row.get("phone") or "").strip()
        tracked = await outbound.tracking.find_recipient(account.name, sending_id, phone)
        params = {"sendingId": sending_id}
        if tracked is not None:
            params[MESSAGE_ID_PARAM] = tracked.message_id
        raw = exchange.raw(account, "report")
        raw = type(raw)(
            source=raw.source,
            provider=raw.provider,
            kind="report",
            method=raw.method,
            query=urlencode(params),
            content_type=raw.content_type,
            body=report_row_csv(row),
            received_at=raw.received_at,
        )
        try:
            events = normalize_events_report(raw, options)
        except NormalizeError as error:
            await outbound.store.write(Quarantine(raw, str(error)))
            quarantined += 1
            continue
        if tracked is not None:
            if tracked.message_id not in seen:
                history = await outbound.store.events(
                    EventFilter(provider="nrs360", message_id=tracked.message_id, limit=MAX_HISTORY)
                )
                seen[tracked.message_id] = {_identity(event) for event in history}
            fresh = [e for e in events if _identity(e) not in seen[tracked.message_id]]
            if not fresh:
                known += 1
                continue
        else:
            fresh = events
        result: WriteResult = await outbound.store.write(Accept(raw, fresh))
        if result.outcome == "duplicate":
            known += 1
        else:
            stored += 1
            if tracked is not None:
                seen[tracked.message_id].update(_identity(event) for event in fresh)
    return BackfillResult(rows=len(rows), stored=stored, known=known, quarantined=quarantined)
