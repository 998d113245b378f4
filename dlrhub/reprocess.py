"""Normalize a quarantined callback again, with today's code and configuration."""

from __future__ import annotations

from dlrhub.normalizers import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.providers.source import SourceLookup
from dlrhub.store import QuarantineEntry, Reprocess, Store, WriteResult


async def reprocess_entry(
    store: Store, sources: SourceLookup, entry: QuarantineEntry
) -> WriteResult:
    """Store the events if it now normalizes; otherwise record the new reason."""
    source = sources.source(entry.raw.source)
    options = source.options if source is not None else SourceOptions()
    provider = PROVIDERS.get(entry.raw.provider)
    if provider is None:
        reason = f"provider {entry.raw.provider!r} has no normalizer in this version"
        return await store.write(Reprocess(entry.id, None, reason))
    try:
        events = provider.normalize(entry.raw, options)
    except NormalizeError as error:
        return await store.write(Reprocess(entry.id, None, str(error)))
    return await store.write(Reprocess(entry.id, events))
