"""Hypothesis strategies shared by the property tests of the outbound normalizers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from hypothesis import strategies as st

from dlrhub.event import Event, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS

any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_text = st.text(
    st.characters(exclude_categories=("Cs",)), max_size=30
)  # JSON has no lone surrogates
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text
)


def json_documents(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON values that often look like the provider's answers."""
    named_keys = st.sampled_from(keys) | st.text(max_size=6)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(named_keys, children, max_size=6)
        ),
        max_leaves=20,
    )


def bodies(keys: list[str]) -> st.SearchStrategy[bytes]:
    as_json = json_documents(keys).map(lambda value: orjson.dumps(value))
    return st.one_of(as_json, st.binary(max_size=200))


def queries(names: list[str]) -> st.SearchStrategy[str]:
    params = st.lists(st.tuples(st.sampled_from(names) | json_text, json_text), max_size=6)
    return st.one_of(params.map(urlencode), any_text)


options = st.builds(
    SourceOptions,
    status_map=st.dictionaries(any_text, st.sampled_from(list(Status)), max_size=3),
    timezone=st.sampled_from(["UTC", "Europe/Madrid", "America/Bogota", "Nowhere/Land"]),
)


def raw_callbacks(
    provider: str, kinds: list[str], query: st.SearchStrategy[str], body: st.SearchStrategy[bytes]
) -> st.SearchStrategy[RawCallback]:
    return st.builds(
        RawCallback,
        source=st.just("account"),
        provider=st.just(provider),
        kind=st.sampled_from(kinds) | any_text,
        method=st.sampled_from(["GET", "POST"]),
        query=query,
        content_type=st.just("application/json"),
        body=body,
        received_at=st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
    )


def check_events_or_error(provider: str, raw: RawCallback, given: SourceOptions) -> None:
    try:
        events = PROVIDERS[provider].normalize(raw, given)
    except NormalizeError:
        return
    for event in events:
        assert event.provider == provider
        assert Event.from_json(event.to_json()) == event
