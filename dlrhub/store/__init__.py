"""Durable storage of events, message state, raw callbacks and quarantine."""

from dlrhub.store.base import (
    Accept,
    BadSearch,
    CallbackCount,
    Drop,
    EventFilter,
    KeepSecret,
    MessageSearch,
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
    "BadSearch",
    "CallbackCount",
    "Drop",
    "EventFilter",
    "KeepSecret",
    "MessageSearch",
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
