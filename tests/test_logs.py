"""`configure_logging`: HTTP clients' request lines only at `log_level = "debug"`; the
json format's lines (the end-to-end ones are in tests/receiver/test_request_id.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from dlrhub.logs import CHATTY_LOGGERS, HANDLER_NAME, UVICORN_ACCESS, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The levels as they were, and no handler of `configure_logging` left on the root."""
    names = ("", *CHATTY_LOGGERS, UVICORN_ACCESS)
    before = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)


def test_http_client_requests_are_logged_only_at_debug() -> None:
    configure_logging("info")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    configure_logging("debug")
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpcore").isEnabledFor(logging.DEBUG)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def json_log() -> io.StringIO:
    """`configure_logging` in json to a string."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    return stream


def test_json_lines_carry_time_level_logger_message_and_the_extra_fields(
    json_log: io.StringIO,
) -> None:
    log = logging.getLogger("dlrhub.test")
    log.info("delivered %d event(s)", 2, extra={"request_id": "r-1", "seq": 7, "ids": ["a"]})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed", extra={"sink": "file"})
    first, second = json_lines(json_log)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first == {
        "ts": first["ts"],
        "level": "INFO",
        "logger": "dlrhub.test",
        "message": "delivered 2 event(s)",
        "pid": os.getpid(),
        "request_id": "r-1",
        "seq": 7,
        "ids": ["a"],
    }
    assert (second["level"], second["message"], second["sink"]) == ("ERROR", "it failed", "file")
    assert second["exception"].startswith("Traceback") and "ValueError: boom" in second["exception"]


def test_a_json_line_is_one_line_whatever_the_message_and_fields(
    json_log: io.StringIO,
) -> None:
    log = logging.getLogger("dlrhub.test")
    log.warning("two\nlines", extra={"odd": object(), "big": 2**70, "ts": "not mine"})
    (line,) = json_lines(json_log)
    assert line["message"] == "two\nlines"
    assert line["ts"] != "not mine"  # a field never replaces the line's own keys
    assert line["big"] == str(2**70)


def test_configuring_again_replaces_the_handler_and_text_stays_as_it_was() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", first)
    configure_logging("info", "text", second)
    logging.getLogger("dlrhub.test").info("hello", extra={"request_id": "r-2"})
    assert first.getvalue() == ""
    assert re.fullmatch(r"\S+ \S+ INFO dlrhub.test: hello\n", second.getvalue())
