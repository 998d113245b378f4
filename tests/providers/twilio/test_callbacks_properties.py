"""Property tests of `dlrhub.providers.twilio.callbacks`: any form gives one event or a
`NormalizeError`, and every event survives a JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers.twilio.callbacks import FIELDS, STATUSES, normalize

EXAMPLES = settings(max_examples=300, deadline=None)

received_ats = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
options_strategy = st.builds(
    SourceOptions,
    status_map=st.dictionaries(st.text(max_size=12), st.sampled_from(list(Status)), max_size=3),
    timezone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Nowhere/Land", ""]),
)
names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
values = st.one_of(
    st.sampled_from([*STATUSES, "whatsapp:+14155238886", "+15558675310", "2302141224", ""]),
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
)
forms = st.lists(st.tuples(names, values), max_size=14).map(
    lambda pairs: "&".join(
        f"{quote_plus(name, safe='')}={quote_plus(value, safe='')}" for name, value in pairs
    ).encode("utf-8", "surrogatepass")
)


def raw(body: bytes, received_at: datetime) -> RawCallback:
    return RawCallback(
        source="tw",
        provider="twilio",
        kind="status",
        method="POST",
        query="",
        content_type="application/x-www-form-urlencoded",
        body=body,
        received_at=received_at,
    )


def check(body: bytes, received_at: datetime, options: SourceOptions) -> None:
    try:
        events = normalize(raw(body, received_at), options)
    except NormalizeError:
        return
    (event,) = events
    assert event.type == EventType.MESSAGE_STATUS
    assert event.provider == "twilio"
    assert event.message_id and event.message_id == event.message_id.strip()
    assert event.provider_status and event.provider_status.strip()
    assert isinstance(event.status, Status)
    assert event.channel
    assert event.occurred_at is None or event.occurred_at.tzinfo is not None
    assert Event.from_json(event.to_json()).to_dict() == event.to_dict()


@EXAMPLES
@given(forms, received_ats, options_strategy)
def test_any_form_gives_an_event_or_a_normalize_error(
    body: bytes, received_at: datetime, options: SourceOptions
) -> None:
    check(body, received_at, options)


@EXAMPLES
@given(st.binary(max_size=300), received_ats, options_strategy)
def test_any_bytes_give_an_event_or_a_normalize_error(
    body: bytes, received_at: datetime, options: SourceOptions
) -> None:
    check(body, received_at, options)
    check(b"MessageSid=SM1&MessageStatus=sent&" + body, received_at, options)


@EXAMPLES
@given(st.sampled_from(sorted(STATUSES)), st.text(max_size=20), options_strategy)
def test_a_documented_status_with_a_message_sid_always_gives_an_event(
    status: str, padding: str, options: SourceOptions
) -> None:
    body = f"MessageSid=SM1&MessageStatus={status}&Note={quote_plus(padding)}".encode(
        "utf-8", "surrogatepass"
    )
    (event,) = normalize(raw(body, datetime(2025, 1, 1, tzinfo=UTC)), options)
    mapped = {key.strip().lower(): value for key, value in options.status_map.items()}
    assert event.status == mapped.get(status, STATUSES[status])
