"""Log lines for problems that recur on every request, said once per interval with a count.

A full disk or a lost database fails every callback, and a line per failure
buried the log (137,000 lines in 25 s, with ERROR lines from the store, the
ingest worker and the receiver mixed in). Each place that reports such a
problem keeps one `LimitedLog`: its first occurrence is logged at once, the
ones after it are counted, and the next occurrence after `interval` seconds
logs the latest message with that count. When the problem ends, `ended()`
says so once with the total. The per-request access line (`server.access_log`,
dlrhub/receiver/access_log.py) is separate from these.

| line                         | when                                                   |
|------------------------------|--------------------------------------------------------|
| `<message> (1 time; ...)`    | the first occurrence, or the first after `ended()`     |
| `<message> (N times in T s)` | an occurrence at least `interval` after the last line  |
| `<ended message> (N times in all)` | `ended()` after any occurrence: the spell's total |

One `LimitedLog` serves one event loop (no locks): the store's writer, the
ingest worker's link, the receiver's 503 answers. `RepeatedLineFilter` does the
same for a line another library logs per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL_SECONDS = 10.0


class LimitedLog:
    """One recurring problem's lines on `logger`: at most one per `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.ERROR,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self.clock = clock
        self._last_line: float | None = None  # when a line was last logged; None: no spell
        self._unlogged = 0  # occurrences since that line
        self._total = 0  # occurrences since the spell began

    @property
    def ongoing(self) -> bool:
        """Whether the problem happened and `ended()` was not called since."""
        return self._last_line is not None

    def happened(self, message: str, *args: object, exc_info: bool = False) -> None:
        """One occurrence: logged if it is the first or `interval` has passed, else counted."""
        suffix = self.occurred()
        if suffix is not None and self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, message + suffix, *args, exc_info=exc_info)

    def occurred(self) -> str | None:
        """Count one occurrence; the count to append to its line if a line is due, else None."""
        self._total += 1
        self._unlogged += 1
        now = self.clock()
        if self._last_line is None:
            suffix = f" (1 time; repeats are counted and logged once per {self.interval:g} s)"
        elif now - self._last_line >= self.interval:
            suffix = f" ({self._unlogged} times in {now - self._last_line:.0f} s)"
        else:
            return None
        self._last_line = now
        self._unlogged = 0
        return suffix

    def ended(self, message: str, *args: object, level: int = logging.WARNING) -> None:
        """The problem is over: say so once, with how often it happened, if it happened."""
        if self._last_line is None:
            return
        total = self._total
        self._last_line = None
        self._unlogged = self._total = 0
        times = "1 time" if total == 1 else f"{total} times"
        self.logger.log(level, message + f" ({times} in all)", *args)


class RepeatedLineFilter(logging.Filter):
    """A filter for another library's logger that writes `text` on every request (Uvicorn's
    "Exceeded concurrency limit."): that line goes through once per interval, with a count."""

    def __init__(self, text: str, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__()
        self.text = text
        self._limited = LimitedLog(logging.getLogger(__name__), interval=interval)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.text:
            return True
        suffix = self._limited.occurred()
        if suffix is None:
            return False
        record.msg = self.text + suffix
        return True
