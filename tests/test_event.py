"""The event type and its status lattice."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given

from dlrhub.event import Event, Status
from tests.strategies import events


def test_lattice_order() -> None:
    assert Status.UNKNOWN.rank < Status.ACCEPTED.rank < Status.QUEUED.rank < Status.SENT.rank
    finals = [s for s in Status if s.is_final]
    assert set(finals) == {
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.REJECTED,
        Status.EXPIRED,
    }
    assert all(s.rank > Status.SENT.rank for s in finals)


@given(events)
def test_any_event_round_trips_through_json(event: Event) -> None:
    assert Event.from_json(event.to_json()) == event


@given(events)
def test_with_seq_keeps_every_other_field(event: Event) -> None:
    assert event.with_seq(7) == msgspec.structs.replace(event, seq=7)


@given(events)
def test_any_event_round_trips_through_its_stored_document(event: Event) -> None:
    assert Event.from_json(event.to_document()) == event


def test_a_document_that_is_not_an_event_is_a_value_error() -> None:
    for raw in (b"", b"[]", b'{"id": "x"}', b'{"id": 1, "source": "s"}'):
        with pytest.raises(ValueError, match="not an event"):
            Event.from_json(raw)
