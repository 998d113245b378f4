"""Durable storage of events, message state, raw callbacks and quarantine."""

from dlrhub.store.base import (
    Accept,
    Drop,
    EventFilter,
    MessageState,
    Probe,
    Quarantine,
    QuarantineEntry,
    Reprocess,
    Store,
    StoredCallback,
    StoreUnavailable,
    WriteItem,
    WriteResult,
)
from dlrhub.store.sql import SQLStore
from dlrhub.store.sqlite import SQLiteStore

__all__ = [
    "Accept",
    "Drop",
    "EventFilter",
    "MessageState",
    "Probe",
    "Quarantine",
    "QuarantineEntry",
    "Reprocess",
    "SQLStore",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "StoredCallback",
    "WriteItem",
    "WriteResult",
]
