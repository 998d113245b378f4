"""`LimitedLog`: a recurring problem is logged at once, then once per interval with a count."""

from __future__ import annotations

import logging

import pytest

from dlrhub.log_limits import LimitedLog, RepeatedLineFilter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger() -> logging.Logger:
    return logging.getLogger("tests.log_limits")


def test_the_first_is_logged_then_one_line_per_interval_with_the_count(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    limited = LimitedLog(logger, interval=10.0, clock=clock)
    caplog.set_level(logging.INFO, logger.name)
    for second in range(25):  # 1,000 failures over 25 s
        clock.now = 100.0 + second
        for _ in range(40):
            limited.happened("commit failed: %s", "disk full")
    assert limited.ongoing
    limited.ended("commits succeed again")
    assert not limited.ongoing
    first = "commit failed: disk full (1 time; repeats are counted and logged once per 10 s)"
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("ERROR", first),
        ("ERROR", "commit failed: disk full (400 times in 10 s)"),
        ("ERROR", "commit failed: disk full (400 times in 10 s)"),
        ("WARNING", "commits succeed again (1000 times in all)"),
    ]


def test_ended_says_nothing_without_a_problem_and_a_new_spell_starts_afresh(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    limited = LimitedLog(logger, interval=10.0, clock=clock)
    caplog.set_level(logging.INFO, logger.name)
    limited.ended("fine again")
    assert caplog.records == []
    limited.happened("broken")
    limited.ended("fine again")
    limited.happened("broken")  # at the same instant: a new spell, logged at once
    assert [record.getMessage() for record in caplog.records] == [
        "broken (1 time; repeats are counted and logged once per 10 s)",
        "fine again (1 time in all)",
        "broken (1 time; repeats are counted and logged once per 10 s)",
    ]


def test_the_traceback_rides_on_the_lines_that_are_logged(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    limited = LimitedLog(logger, interval=10.0, clock=Clock())
    for _ in range(3):
        try:
            raise RuntimeError("bug")
        except RuntimeError:
            limited.happened("unexpected", exc_info=True)
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None


def test_a_library_line_logged_per_request_goes_through_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uvicorn_error = logging.getLogger("tests.log_limits.uvicorn")
    line_filter = RepeatedLineFilter("Exceeded concurrency limit.", interval=3600.0)
    uvicorn_error.addFilter(line_filter)
    try:
        for _ in range(500):
            uvicorn_error.warning("Exceeded concurrency limit.")
        uvicorn_error.warning("something else")
    finally:
        uvicorn_error.removeFilter(line_filter)
    assert [record.getMessage() for record in caplog.records] == [
        "Exceeded concurrency limit. (1 time; repeats are counted and logged once per 3600 s)",
        "something else",
    ]
