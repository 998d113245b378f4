"""Exponential backoff with full jitter, and `Retry-After` as a floor."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dlrhub.retry_after import parse_retry_after
from dlrhub.sinks.backoff import MAX_RETRY_AFTER, retry_delay


def ceiling(attempt: int) -> float:
    return retry_delay(attempt, initial=0.5, maximum=60, factor=2, uniform=lambda a, b: b)


def test_the_ceiling_grows_exponentially_up_to_the_maximum() -> None:
    assert [ceiling(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]
    assert ceiling(10_000) == 60


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0, max_value=1))
def test_full_jitter_is_anywhere_between_zero_and_the_ceiling(attempt: int, share: float) -> None:
    delay = retry_delay(
        attempt, initial=0.5, maximum=60, factor=2, uniform=lambda a, b: a + (b - a) * share
    )
    assert 0 <= delay <= ceiling(attempt)


def test_retry_after_is_a_floor_with_a_cap() -> None:
    low = dict(initial=0.5, maximum=60.0, factor=2.0, uniform=lambda a, b: 0.0)
    assert retry_delay(1, retry_after=7, **low) == 7  # type: ignore[arg-type]
    assert retry_delay(1, retry_after=10**9, **low) == MAX_RETRY_AFTER  # type: ignore[arg-type]


def test_parse_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Fri, 20 Nov 2026 10:00:30 GMT", now) == 30
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
