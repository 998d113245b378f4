"""The operator console's store support: message search, per-minute callback counts and
shared secrets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrhub.event import RawCallback, Status
from dlrhub.store import Accept, Quarantine, SQLStore
from dlrhub.store.base import BadSearch, CallbackCount, MessageSearch, MessageState
from dlrhub.store.message_search import after_prefix, digits_of, recipient_match
from tests.payloads import T0, raw, status_event
from tests.store.backends import StoreMaker


@pytest.fixture
async def store(make_store: StoreMaker) -> AsyncIterator[SQLStore]:
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


@dataclass(frozen=True)
class Sent:
    """One message as the test wrote it: what a search is checked against."""

    message_id: str
    recipient: str | None
    ref: str | None
    status: Status
    provider: str
    source: str
    received: datetime


def callback(source: str, received: datetime, body: str = "") -> RawCallback:
    return replace(raw(body or str(uuid.uuid4()), source), received_at=received)


async def send(store: SQLStore, sent: Sent) -> int:
    event = msgspec.structs.replace(
        status_event(sent.message_id, sent.status, 0, f"ev-{uuid.uuid4()}"),
        provider=sent.provider,
        source=sent.source,
        recipient=sent.recipient,
        correlation_id=sent.ref,
        received_at=sent.received,
    )
    result = await store.write(Accept(callback(sent.source, sent.received), [event]))
    assert result.outcome == "stored"
    return result.events[0].seq


def catalogue() -> list[Sent]:
    """Twelve messages one minute apart, over two providers, sources and statuses."""
    recipients = ["+573001234567", "+34 600-123-456", "3001234567", None, "+1 (555) 0100"]
    return [
        Sent(
            message_id=f"m{index % 10}",  # m0 and m1 twice: once per provider
            recipient=recipients[index % len(recipients)],
            ref=f"ref-{index % 3}" if index % 4 else None,
            status=[Status.DELIVERED, Status.FAILED, Status.SENT][index % 3],
            provider="uvox" if index >= 10 else "nrs360",
            source="acme" if index % 2 else "nrs360",
            received=T0 + timedelta(minutes=index),
        )
        for index in range(12)
    ]


def recipient_matches(query: str | None, recipient: str | None) -> bool:
    """The rule of docs/search.md, written plainly: digits only, "+" a full number."""
    if query is None:
        return True
    if recipient is None:
        return False
    digits, wanted = digits_of(recipient), digits_of(query)
    return digits == wanted if query.startswith("+") else digits.endswith(wanted)


def expected(sent: list[Sent], query: MessageSearch) -> list[str]:
    """The `provider/message_id`s `query` should find, newest first (written in order)."""
    return [
        f"{message.provider}/{message.message_id}"
        for message in reversed(sent)
        if query.message_id in (None, message.message_id)
        and query.correlation_id in (None, message.ref)
        and query.provider in (None, message.provider)
        and query.source in (None, message.source)
        and query.status in (None, message.status.value)
        and (query.since is None or message.received >= query.since)
        and (query.until is None or message.received < query.until)
        and recipient_matches(query.recipient, message.recipient)
    ]


def names(states: list[MessageState]) -> list[str]:
    return [f"{state.provider}/{state.message_id}" for state in states]


SHAPES = [
    MessageSearch(),
    MessageSearch(message_id="m1"),
    MessageSearch(correlation_id="ref-1"),
    MessageSearch(recipient="4567"),
    MessageSearch(recipient="+573001234567"),
    MessageSearch(recipient="34600123456"),
    MessageSearch(status="failed"),
    MessageSearch(provider="uvox"),
    MessageSearch(source="acme"),
    MessageSearch(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=7)),
    MessageSearch(since=T0 + timedelta(minutes=9)),
    MessageSearch(until=T0 + timedelta(minutes=2)),
    MessageSearch(status="delivered", source="nrs360", recipient="1234567"),
]


async def test_each_search_shape_finds_its_messages_newest_first_page_by_page(
    store: SQLStore,
) -> None:
    sent = catalogue()
    for message in sent:
        await send(store, message)
    for shape in SHAPES:
        want = expected(sent, shape)
        assert names(await store.search_messages(shape)) == want, shape
        pages: list[str] = []
        cursor: int | None = None
        while page := await store.search_messages(replace(shape, limit=2, before_seq=cursor)):
            assert len(page) <= 2
            pages += names(page)
            cursor = page[-1].last_seq
        assert pages == want, shape
    assert [m.message_id for m in await store.search_messages(MessageSearch(before_seq=3))] == [
        "m1",
        "m0",
    ]


async def test_a_found_message_says_when_its_last_event_came_in(store: SQLStore) -> None:
    sent = catalogue()[0]
    seq = await send(store, sent)
    (found,) = await store.search_messages(MessageSearch(message_id=sent.message_id))
    assert (found.last_seq, found.updated_at) == (seq, sent.received)
    assert found.to_dict()["updated_at"] == "2026-11-20T10:00:00.000000Z"
    assert await store.message(sent.provider, sent.message_id) == found


async def test_recipient_full_number_suffix_and_too_short(store: SQLStore) -> None:
    sent = catalogue()[0]  # +573001234567
    await send(store, sent)

    async def found(text: str) -> bool:
        return bool(await store.search_messages(MessageSearch(recipient=text)))

    for text in ("573001234567", "3001234567", "4567", " 300 123-4567", "+57 300 123 4567"):
        assert await found(text), text
    for text in ("+3001234567", "+4567", "5730012345670", "4568", "99999"):
        assert not await found(text), text
    for text in ("567", "+", "abc", "", "5 6-7"):
        with pytest.raises(BadSearch, match="at least 4 digits"):
            await store.search_messages(MessageSearch(recipient=text))


async def test_a_bad_search_is_refused_before_it_reaches_the_database(store: SQLStore) -> None:
    for query in (
        MessageSearch(status="nope"),
        MessageSearch(limit=0),
        MessageSearch(limit=100_000),
        MessageSearch(before_seq=2**63),
        MessageSearch(recipient="12"),
    ):
        with pytest.raises(BadSearch):
            await store.search_messages(query)
    assert issubclass(BadSearch, ValueError)


def test_the_upper_bound_of_a_suffix_is_the_next_digit_string() -> None:
    assert after_prefix("7654") == "7655"
    assert after_prefix("7659") == "766"
    assert after_prefix("0999") == "1"
    assert after_prefix("9999") is None
    assert recipient_match("+1 (555) 0100").full
    assert recipient_match("555-0100").key == "0010555"


async def test_callbacks_are_counted_per_minute_source_and_outcome(store: SQLStore) -> None:
    first, second = T0 + timedelta(seconds=5), T0 + timedelta(minutes=1, seconds=59)
    await store.write(Accept(callback("nrs360", first, "a"), []))
    await store.write(Accept(callback("nrs360", second, "a"), []))  # a retry: a duplicate
    await store.write(Accept(callback("nrs360", first, "b"), []))
    await store.write(Quarantine(callback("acme", second, "c"), "not understood"))
    await store.write(Quarantine(callback("acme", second, "c"), "not understood"))
    poll = replace(callback("onurix-main", second, "d"), kind="poll", provider="onurix")
    await asyncio.gather(store.write(Accept(poll, [])), store.write(Accept(poll, [])))

    counts = await store.callback_counts(T0 + timedelta(seconds=30))  # its whole minute
    minute = T0 + timedelta(minutes=1)
    assert counts == [
        CallbackCount(T0, "nrs360", "stored", 2),
        CallbackCount(minute, "acme", "duplicate", 1),
        CallbackCount(minute, "acme", "quarantined", 1),
        CallbackCount(minute, "nrs360", "duplicate", 1),
        CallbackCount(minute, "onurix-main", "duplicate", 1),  # one commit, counted apart
        CallbackCount(minute, "onurix-main", "stored", 1),
    ]
    assert await store.callback_counts(minute) == counts[1:]
    assert counts[0].to_dict() == {
        "minute": "2026-11-20T10:00:00.000000Z",
        "source": "nrs360",
        "outcome": "stored",
        "count": 2,
    }


async def test_counts_add_up_across_several_writers(make_store: StoreMaker) -> None:
    stores = [make_store() for _ in range(3)]
    for opened in stores:
        await opened.open()
    try:
        bodies = [f"body-{number}" for number in range(60)]
        # Every writer gets every callback: each is stored once and a duplicate twice.
        await asyncio.gather(
            *(
                opened.write(Accept(callback("nrs360", T0, body), []))
                for opened in stores
                for body in bodies
            )
        )
        counts = await stores[0].callback_counts(T0)
    finally:
        for opened in stores:
            await opened.close()
    assert [(c.outcome, c.count) for c in counts] == [("duplicate", 120), ("stored", 60)]


async def test_a_shared_secret_is_made_once_and_the_same_for_every_store(
    make_store: StoreMaker,
) -> None:
    one, two = make_store(), make_store()
    await one.open()
    await two.open()
    try:
        secrets = await asyncio.gather(one.shared_secret("console"), two.shared_secret("console"))
        assert secrets[0] == secrets[1] == await one.shared_secret("console")
        assert len(secrets[0]) >= 43  # 32 random bytes, URL-safe base64
        assert await two.shared_secret("other") != secrets[0]
    finally:
        await one.close()
        await two.close()
    again = make_store()
    await again.open()
    try:
        assert await again.shared_secret("console") == secrets[0]
    finally:
        await again.close()


phone_characters = st.sampled_from("0123456789  -+()")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.text(phone_characters, max_size=14) | st.none(), min_size=1, max_size=8),
    st.data(),
)
async def test_the_reversed_digits_key_finds_exactly_the_numbers_ending_with_the_query(
    store: SQLStore, recipients: list[str | None], data: st.DataObject
) -> None:
    provider = f"p-{uuid.uuid4().hex[:12]}"  # this example's messages only
    numbers = [digits_of(text) for text in recipients if text and len(digits_of(text)) >= 4]
    if numbers and data.draw(st.booleans()):
        number = data.draw(st.sampled_from(numbers))
        query = number[-data.draw(st.integers(4, len(number))) :]
    else:
        query = data.draw(st.text("0123456789", min_size=4, max_size=8))
    for index, recipient in enumerate(recipients):
        sent = Sent(f"m{index}", recipient, None, Status.SENT, provider, "nrs360", T0)
        await send(store, sent)
    found = await store.search_messages(MessageSearch(recipient=query, provider=provider))
    want = {
        f"m{index}"
        for index, text in enumerate(recipients)
        if text is not None and digits_of(text).endswith(query)
    }
    assert {state.message_id for state in found} == want
