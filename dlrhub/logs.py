"""How every dlrhub process logs: one format, on standard error.

HTTP clients log each request at INFO (httpx: `HTTP Request: GET ... "200 OK"`,
with the URL as sent); dlrhub logs what matters about its exchanges itself, so
their loggers are at WARNING unless `log_level` is `debug`.
"""

from __future__ import annotations

import logging
import sys

CHATTY_LOGGERS = ("httpx", "httpcore")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)
