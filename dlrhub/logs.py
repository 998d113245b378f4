"""How every dlrhub process logs: one format (`log_format`), on standard error.

| `log_format` | a line                                                                  |
|--------------|-------------------------------------------------------------------------|
| `text`       | `2026-12-02 08:40:02,123 INFO dlrhub.access: <message>`                 |
| `json`       | `{"ts":"2026-12-02T08:40:02.123Z","level":"INFO","logger":"dlrhub.access",` |
|              | `"message":"<message>","pid":4242, <fields>}`: one object per line      |

The fields of a json line are the `extra=` a call passes (`request_id`, `source`,
`sink`, `event_id`, `seq`, `attempt`, `outcome`, `status`, `duration_ms`,
`account`, ...; docs/logging.md lists them), and `exception` with the traceback
text when there is one. Both formats write the same message: what makes a
message safe (dlrhub/redact.py: secrets are removed before a value is logged)
makes its json line safe, and no field is filled from anything unredacted.

HTTP clients log each request at INFO (httpx: `HTTP Request: GET ... "200 OK"`,
with the URL as sent); dlrhub logs what matters about its exchanges itself, so
their loggers are at WARNING unless `log_level` is `debug`.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

CHATTY_LOGGERS = ("httpx", "httpcore")
UVICORN_ACCESS = "uvicorn.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "dlrhub"  # the handler `configure_logging` adds, replaced when called again

LogFormat = Literal["text", "json"]

# What every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "color_message",  # Uvicorn's copy of its message with terminal colours
        "taskName",
    }
)
_STANDARD_KEYS = ("ts", "level", "logger", "message", "pid")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ts (UTC, RFC 3339, ms), level, logger, message, pid and
    the fields."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # `serve` and its ingest worker share standard error
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _STANDARD_KEYS:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # an integer over 64 bits, say: every field as text then
            return orjson.dumps({key: str(value) for key, value in line.items()}).decode()


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (a test's capture replaces it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    level: str, log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Log at `level` in `log_format` to standard error (or `stream`): one handler on the
    root logger, replacing the one an earlier call added; other handlers stay."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == HANDLER_NAME:
            root.removeHandler(old)
    handler: logging.Handler = _StandardError() if stream is None else logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else logging.WARNING)
    # dlrhub writes its own access line (dlrhub/receiver/access_log.py): Uvicorn's would be
    # a second one, with the query unredacted.
    logging.getLogger(UVICORN_ACCESS).setLevel(logging.WARNING)
