"""`configure_logging`: HTTP clients' request lines only at `log_level = "debug"`."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from dlrhub.logs import CHATTY_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    before = {name: logging.getLogger(name).level for name in ("", *CHATTY_LOGGERS)}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def test_http_client_requests_are_logged_only_at_debug() -> None:
    configure_logging("info")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    configure_logging("debug")
    logging.getLogger().setLevel(logging.DEBUG)  # basicConfig set it only if it had no handler
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpcore").isEnabledFor(logging.DEBUG)
