"""When a batch is tried again and when it is given up."""

from __future__ import annotations

from dlrhub.sinks.base import DeliveryFailed, DeliveryRejected
from dlrhub.sinks.retry import Retries
from dlrhub.sinks.settings import RetryPolicy


def ceiling(a: float, b: float) -> float:
    return b


def test_failures_are_retried_with_backoff_until_max_attempts() -> None:
    retries = Retries(RetryPolicy(initial=0.5, factor=2, max_attempts=4), ceiling)
    waits = [retries.after_failure(DeliveryFailed("answered 500")) for _ in range(4)]
    assert waits == [0.5, 1.0, 2.0, None]
    assert retries.attempts == 4


def test_a_rejected_batch_is_given_up_at_once() -> None:
    retries = Retries(RetryPolicy(), ceiling)
    assert retries.after_failure(DeliveryRejected("answered 400")) is None
    assert retries.attempts == 1


def test_a_batch_is_given_up_at_max_age_from_its_first_failure() -> None:
    now = [100.0]
    retries = Retries(RetryPolicy(max_age=60.0), ceiling, clock=lambda: now[0])
    assert retries.after_failure(TimeoutError()) == 0.5
    now[0] = 159.0
    assert retries.after_failure(TimeoutError()) == 1.0
    now[0] = 160.0
    assert retries.after_failure(TimeoutError()) is None


def test_retry_after_is_a_floor() -> None:
    retries = Retries(RetryPolicy(), lambda a, b: a)
    assert retries.after_failure(DeliveryFailed("answered 503", retry_after=7.0)) == 7.0


def test_a_sink_that_is_down_is_waited_for_without_counting_attempts() -> None:
    retries = Retries(RetryPolicy(initial=0.5, max=60.0, max_attempts=2, max_age=1.0), ceiling)
    waits = [retries.after_unavailable(None) for _ in range(100)]
    assert waits[:3] == [0.5, 1.0, 2.0] and waits[-1] == 60.0
    assert retries.attempts == 0
    assert retries.after_unavailable(30.0) == 60.0
