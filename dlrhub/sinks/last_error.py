"""A sink's last error: its text, where it is recorded, and how often.

Error texts reach logs, `sinks status` and the dead-letter table, so the
configured secrets are removed and the length is capped. A sink failing the
same way on every attempt, or down for hours, would otherwise write to the
state store on every retry and put a log line per retry.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dlrhub.redact import redact_text
from dlrhub.sinks.base import DeliveryError, SinkUnavailable
from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.sinks.settings import SinkConfig
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable

MAX_ERROR_TEXT = 500
ERROR_RECORD_INTERVAL = 2.0  # seconds between writes of the same last error
UNAVAILABLE_LOG_INTERVAL = 30.0


class LastError:
    """Describes, records and logs a sink's failed attempts, at a bounded rate."""

    def __init__(self, config: SinkConfig, state: SinkStateStore, stats: SinkStats) -> None:
        self.name = config.name
        self.timeout = config.timeout
        self.state = state
        self.stats = stats
        self._secrets = config.secrets()
        self._recorded: tuple[str, float] | None = None
        self._unavailable_logged = 0.0

    def describe(self, error: BaseException) -> str:
        """The error as users may see it: without secrets, at most `MAX_ERROR_TEXT` long."""
        if isinstance(error, DeliveryError):
            text = error.detail
        elif isinstance(error, TimeoutError):
            text = f"no answer within {self.timeout:g}s"
        else:
            text = f"{type(error).__name__}: {error}"
        return redact_text(text, self._secrets)[:MAX_ERROR_TEXT]

    def log_unavailable(self, error: SinkUnavailable) -> None:
        """Say that the sink is down, once per `UNAVAILABLE_LOG_INTERVAL`."""
        now = time.monotonic()
        if now - self._unavailable_logged >= UNAVAILABLE_LOG_INTERVAL:
            self._unavailable_logged = now
            log.warning("sink %s is unavailable: %s", self.name, self.describe(error))

    def delivered(self) -> None:
        """A delivery succeeded: the stored error is now older than it, which `sinks status`
        reads as cleared, so the next error is written at once, even the same text."""
        self._recorded = None

    async def record(self, text: str) -> None:
        """Show `text` as the last error; the same text is written at most every 2s."""
        self.stats.last_error = text
        now = time.monotonic()
        if self._recorded is not None:
            last_text, at = self._recorded
            if last_text == text and now - at < ERROR_RECORD_INTERVAL:
                return
        try:
            await self.state.record_error(self.name, text, datetime.now(UTC))
        except SinkStateUnavailable as error:
            log.warning("sink %s: cannot record its last error: %s", self.name, error)
            return
        # Only once written: lanes failing alike at once each write it, so the text lands
        # even when the lane writing first is cancelled (another lane paused the sink).
        self._recorded = (text, now)
