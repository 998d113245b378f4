"""Hypothesis strategies for dlrhub's own types."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from dlrhub.event import Event, EventType, Status

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | texts
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)

events = st.builds(
    Event,
    id=st.uuids().map(str),
    source=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
    provider=st.sampled_from(["nrs360", "onurix", "uvox"]),
    type=st.sampled_from(list(EventType)),
    received_at=moments,
    channel=st.none() | texts,
    message_id=st.none() | texts,
    correlation_id=st.none() | texts,
    recipient=st.none() | texts,
    sender=st.none() | texts,
    status=st.none() | st.sampled_from(list(Status)),
    provider_status=st.none() | texts,
    occurred_at=st.none() | moments,
    extra=st.dictionaries(texts, json_values, max_size=5),
)
