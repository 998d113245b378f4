"""What a runner reports: the stats the metrics and health pages read, and its logger.

Every piece of a runner logs through the one logger named after the engine,
as the runner did before it was split, so the lines operators filter on keep
their `dlrhub.sinks.engine` name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("dlrhub.sinks.engine")


@dataclass
class SinkStats:
    """What the metrics and health pages show; counters since this process started."""

    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dead_letters_waiting: int = 0
    lag_events: int = 0
    lag_seconds: float = 0.0
    after_seq: int = 0
    state: str = "starting"  # starting, running, retrying, down, paused, disabled, stopped
    last_error: str | None = None
