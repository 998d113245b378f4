"""The work behind a callback's 200: normalize it, then commit what comes of it.

A callback that cannot be normalized is quarantined, not refused: the provider
would retry anything but a 200, and a retry cannot fix it. `Ingest` does this
in the receiver's own process; `dlrhub.receiver.ingest_worker` runs the same
`Ingest` in a worker process so that it uses a second core (see there).
"""

from __future__ import annotations

import asyncio
from typing import Literal, Protocol

import msgspec

from dlrhub.event import RawCallback
from dlrhub.normalizers import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.store import Accept, Quarantine, Store, WriteItem, WriteResult


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


class Ingest:
    """`Ingester` in this process, over `store`."""

    def __init__(self, config: ReceiverSettings, store: Store) -> None:
        self.store = store
        self._options: dict[str, SourceOptions] = {
            source.name: source.options for source in config.sources
        }

    async def __call__(self, raw: RawCallback) -> Ingested:
        item = self.item(raw)
        return ingested(item, await self.store.write(item))

    def item(self, raw: RawCallback) -> WriteItem:
        """What to store for `raw`: its events, or a quarantine entry saying why there are none."""
        try:
            return Accept(raw, PROVIDERS[raw.provider].normalize(raw, self._options[raw.source]))
        except NormalizeError as error:
            return Quarantine(raw, str(error))

    def submit(self, raw: RawCallback) -> tuple[WriteItem, asyncio.Future[WriteResult]]:
        """`item(raw)`, queued for the store's next commit without a task (the worker's batches)."""
        item = self.item(raw)
        return item, self.store.submit(item)


def ingested(item: WriteItem, result: WriteResult) -> Ingested:
    duplicate = result.outcome == "duplicate"
    if isinstance(item, Quarantine):
        return Ingested("quarantined", duplicate, [], result.quarantine_id, item.reason)
    return Ingested("stored", duplicate, [event.id for event in result.events])
