"""Event ids are valid UUIDv7 strings, sortable by time and derived from their seed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dlrhub.ids import uuid7

MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)


@given(MOMENTS, st.binary(max_size=64))
def test_uuid7_is_a_canonical_version_7_uuid(moment: datetime, seed: bytes) -> None:
    text = uuid7(moment, seed)
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert uuid7(moment, seed) == text


@given(MOMENTS, st.binary(max_size=16), st.binary(max_size=16))
def test_later_milliseconds_sort_later(moment: datetime, first: bytes, second: bytes) -> None:
    later = moment + timedelta(milliseconds=1)
    if later.year < 9999:
        assert uuid7(moment, first) < uuid7(later, second)
