"""The work behind a callback's 200: normalize it, redact it, then commit what comes of it.

A callback that cannot be normalized is quarantined, not refused: the provider
would retry anything but a 200, and a retry cannot fix it.

Redaction comes after normalizing and after the dedupe key (`RawCallback.dedupe_key`),
so a parameter named like a secret still tells receipts apart, and before the
store, so no secret reaches the database, its WAL, the quarantine, the events
(`extra`, hence `/v1` answers and sink deliveries) or the logs. The names a
source's configuration gives its parameters (`dlr_params`) are never redacted;
the source token always is (see dlrhub/redact.py). `Normalize` does this, always
in the receiver process that took the callback; `Ingest` then commits it over the
receiver's own store, while `dlrhub.receiver.ingest_worker` hands the ready item
to a worker process that only commits (see there): normalizing runs on as many
cores as there are receiver processes (`server.processes`), committing on one.

A commit that does not end within `server.ingest_timeout` (a stuck disk, a
lock held by a stopped process) is answered 503 with `Retry-After`: the caller
stops waiting, the store still commits it when it can, and the provider's
retry is then answered 200 as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal, Protocol

import msgspec

from dlrhub.event import CREDENTIAL_PARAMETER, Event, RawCallback
from dlrhub.log_limits import LimitedLog
from dlrhub.normalizers import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.receiver.deadlines import Deadlines
from dlrhub.receiver.errors import ReceiverBusy
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.redact import redact_json
from dlrhub.store import Accept, Quarantine, Store, WriteItem, WriteResult

log = logging.getLogger(__name__)


class Ingested(msgspec.Struct, frozen=True, array_like=True):
    """What the receiver answers with; array-like so that it crosses processes compactly."""

    status: Literal["stored", "quarantined"]
    duplicate: bool
    event_ids: list[str]
    quarantine_id: int | None = None
    reason: str | None = None  # why it was quarantined, for the receiver's log


class Ingester(Protocol):
    """Normalizes and durably stores one callback; raises `StoreUnavailable`."""

    async def __call__(self, raw: RawCallback) -> Ingested: ...


class Normalize:
    """What to store for a callback: its events, or a quarantine entry saying why there are none.

    Normalized as received, stored redacted, under the dedupe key of what was received.
    """

    def __init__(self, config: ReceiverSettings) -> None:
        self._options: dict[str, SourceOptions] = {
            source.name: source.options for source in config.sources
        }
        # The parameter names each source's configuration gives: never redacted (but the token).
        self._keep: dict[str, frozenset[str]] = {
            source.name: frozenset(source.options.dlr_params.values()) - {CREDENTIAL_PARAMETER}
            for source in config.sources
        }

    def __call__(self, raw: RawCallback) -> Accept | Quarantine:
        keep = self._keep[raw.source]
        try:
            events = PROVIDERS[raw.provider].normalize(raw, self._options[raw.source])
        except NormalizeError as error:
            return Quarantine(raw.redacted(keep), str(error))
        request_id = raw.request_id
        return Accept(raw.redacted(keep), [_redacted(event, keep, request_id) for event in events])


class Ingest:
    """`Ingester` in this process, over `store`."""

    def __init__(self, config: ReceiverSettings, store: Store) -> None:
        self.store = store
        self.item = Normalize(config)
        self.timeout = config.server.ingest_timeout
        self._deadlines: Deadlines[asyncio.Future[WriteResult]] = Deadlines(
            self.timeout, self._expire
        )
        self._stall = LimitedLog(log)

    async def __call__(self, raw: RawCallback) -> Ingested:
        item = self.item(raw)
        future = self.store.submit(item)
        key = self._deadlines.add(future, future.get_loop())
        try:
            result = await future
        finally:
            self._deadlines.discard(key)
        if self._stall.ongoing:
            self._stall.ended("the store commits callbacks in time again")
        return ingested(item, result)

    def _expire(self, future: asyncio.Future[WriteResult]) -> None:
        """The commit took over `timeout`: answer 503 now; the store still commits it."""
        if future.done():
            return
        error = ReceiverBusy(f"the store did not commit within {self.timeout:g} s")
        future.set_exception(error)
        self._stall.happened(
            "the store has not committed a callback within %g s; callbacks are answered 503",
            self.timeout,
        )


def _redacted(event: Event, keep: frozenset[str], request_id: str | None = None) -> Event:
    """`event` without secrets in its `extra` (the fields it names are the configured ones),
    with the HTTP request's id as `extra.request_id` unless the provider's data has one."""
    extra = redact_json(event.extra, keep)
    if request_id is not None and "request_id" not in extra:
        extra = {**extra, "request_id": request_id}
    return event if extra is event.extra else msgspec.structs.replace(event, extra=extra)


def ingested(item: WriteItem, result: WriteResult) -> Ingested:
    duplicate = result.outcome == "duplicate"
    if isinstance(item, Quarantine):
        return Ingested("quarantined", duplicate, [], result.quarantine_id, item.reason)
    return Ingested("stored", duplicate, [event.id for event in result.events])
