"""Property tests of `dlrhub.providers.nrs360.callbacks`: any input gives events or a
`NormalizeError`, and every event survives a JSON round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.event import Event, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers.nrs360.callbacks import (
    DEFAULT_DLR_PARAMS,
    ENGAGEMENT_EVENTS,
    EVENT_FIELDS,
    EVENT_STATUSES,
    normalize,
)

EXAMPLES = settings(max_examples=300, deadline=None)


# Any code point, lone surrogates included: a receiver may hand those over.
any_text = st.text(st.characters(exclude_categories=()))

received_ats = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

options_strategy = st.builds(
    SourceOptions,
    dlr_params=st.one_of(
        st.just(dict(DEFAULT_DLR_PARAMS)),
        st.dictionaries(st.sampled_from(sorted(DEFAULT_DLR_PARAMS)), st.text(max_size=8)),
    ),
    status_map=st.dictionaries(st.text(max_size=12), st.sampled_from(list(Status)), max_size=3),
    timezone=st.sampled_from(["Europe/Madrid", "UTC", "America/Bogota", "Nowhere/Land", ""]),
    dlr_plus_as_space=st.booleans(),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

date_texts = st.one_of(
    any_text,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).flatmap(
        lambda moment: st.sampled_from(
            [
                moment.isoformat(),
                moment.isoformat(sep=" "),
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                moment.strftime("%Y-%m-%d %H:%M"),
                moment.strftime("%d/%m/%Y %H:%M:%S"),
                moment.strftime("%Y%m%d%H%M%S"),
                moment.isoformat() + "Z",
                moment.isoformat() + "+14:00",
                moment.isoformat() + "-12:00",
            ]
        )
    ),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
)

event_values = st.one_of(
    st.sampled_from(sorted(set(EVENT_STATUSES) | ENGAGEMENT_EVENTS)), st.text(max_size=20)
)

field_values: dict[str, st.SearchStrategy[str]] = {
    "event": event_values,
    "eventDate": date_texts,
    "extra": st.one_of(json_values.map(json.dumps), st.sampled_from(["", "{"]), st.text()),
    "contactId": st.one_of(st.integers().map(str), st.text()),
    "campaignId": st.one_of(st.integers(min_value=0).map(str), st.text()),
    "formId": st.one_of(st.integers(min_value=0, max_value=10**30).map(str), st.text()),
}


@st.composite
def event_forms(draw: st.DrawFn) -> bytes:
    # `event` is always there: without it every body is an error, and st.binary()
    # already covers those.
    others = st.sampled_from([name for name in EVENT_FIELDS if name != "event"])
    names = ["event", *draw(st.lists(others, unique=True))]
    pairs = [(name, draw(field_values.get(name, st.text()))) for name in names]
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return urlencode(pairs, encoding=encoding, errors="replace").encode("ascii")


@st.composite
def dlr_queries(draw: st.DrawFn) -> str:
    names = [*DEFAULT_DLR_PARAMS.values(), "token", "customId"]
    params = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(names), st.text(max_size=6)),
                st.one_of(
                    st.sampled_from(["1", "2", "4", "8", "16", "34", "66", "DELIVRD", "%d"]),
                    date_texts,
                    any_text,
                ),
            ),
            max_size=10,
        )
    )
    status = draw(st.sampled_from(["1", "8", "DELIVRD", "99", "%d"]))
    params.insert(draw(st.integers(0, len(params))), ("status", status))
    encode = draw(st.booleans())
    return "&".join(
        f"{quote(name, safe='+', errors='surrogatepass') if encode else name}="
        f"{quote(value, safe='+', errors='surrogatepass') if encode else value}"
        for name, value in params
    )


@st.composite
def progress_bodies(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4))
    for name, values in [
        ("id", st.one_of(st.integers(), st.text(), json_values)),
        ("createdAt", st.one_of(date_texts, json_values)),
        ("updatedAt", st.one_of(date_texts, st.none())),
        ("finishedAt", st.one_of(date_texts, st.none(), st.integers())),
    ]:
        if draw(st.booleans()):
            data[name] = draw(values)
    # `data.status` is always there: st.binary() and json_values cover the rest.
    data["status"] = draw(st.sampled_from(["started", "finished", "failed"]))
    return json.dumps({"data": data}).encode("utf-8")


def raw_callback(
    kind: str, *, body: bytes = b"", query: str = "", received_at: datetime
) -> RawCallback:
    return RawCallback(
        source="nrs360-prop",
        provider="nrs360",
        kind=kind,
        method="POST",
        query=query,
        content_type="",
        body=body,
        received_at=received_at,
    )


def assert_events_or_normalize_error(raw: RawCallback, options: SourceOptions) -> None:
    try:
        events = normalize(raw, options)
    except NormalizeError:
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Event)
        assert event.provider == "nrs360"
        assert Event.from_json(event.to_json()) == event


@EXAMPLES
@given(body=st.binary(), options=options_strategy, received_at=received_ats)
def test_events_with_any_bytes(body: bytes, options: SourceOptions, received_at: datetime) -> None:
    assert_events_or_normalize_error(
        raw_callback("events", body=body, received_at=received_at), options
    )


@EXAMPLES
@given(body=event_forms(), options=options_strategy, received_at=received_ats)
def test_events_with_any_field_values(
    body: bytes, options: SourceOptions, received_at: datetime
) -> None:
    assert_events_or_normalize_error(
        raw_callback("events", body=body, received_at=received_at), options
    )


@EXAMPLES
@given(query=any_text, options=options_strategy, received_at=received_ats)
def test_dlr_with_any_query(query: str, options: SourceOptions, received_at: datetime) -> None:
    assert_events_or_normalize_error(
        raw_callback("dlr", query=query, received_at=received_at), options
    )


@EXAMPLES
@given(query=dlr_queries(), options=options_strategy, received_at=received_ats)
def test_dlr_with_any_parameters(query: str, options: SourceOptions, received_at: datetime) -> None:
    assert_events_or_normalize_error(
        raw_callback("dlr", query=query, received_at=received_at), options
    )


@EXAMPLES
@given(
    body=st.one_of(
        st.binary(), json_values.map(lambda value: json.dumps(value).encode()), progress_bodies()
    ),
    options=options_strategy,
    received_at=received_ats,
)
def test_progress_with_any_body(body: bytes, options: SourceOptions, received_at: datetime) -> None:
    assert_events_or_normalize_error(
        raw_callback("progress", body=body, received_at=received_at), options
    )


@EXAMPLES
@given(
    kind=st.one_of(st.sampled_from(["events", "dlr", "progress"]), any_text),
    body=st.one_of(st.binary(), event_forms(), progress_bodies()),
    query=st.one_of(any_text, dlr_queries()),
    options=options_strategy,
    received_at=received_ats,
)
def test_any_kind(
    kind: str, body: bytes, query: str, options: SourceOptions, received_at: datetime
) -> None:
    raw = raw_callback(kind, body=body, query=query, received_at=received_at)
    assert_events_or_normalize_error(raw, options)


@EXAMPLES
@given(
    event=event_values,
    date=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9990, 1, 1)),
    options=options_strategy,
    received_at=received_ats,
)
def test_valid_event_notifications_always_normalize(
    event: str, date: datetime, options: SourceOptions, received_at: datetime
) -> None:
    body = urlencode({"event": event + "x", "eventDate": date.isoformat() + "+00:00"}).encode()
    raw = raw_callback("events", body=body, received_at=received_at)
    [normalized] = normalize(raw, options)
    assert normalized.occurred_at == date.replace(tzinfo=UTC)
    assert normalized.provider_status == event + "x"
