"""When to ask a provider again about a message: frequent at first, then backing off.

The n-th poll of a message (n = 0 for the first) comes `first_interval *
multiplier**n` after the previous one, capped at `max_interval`, spread by
`jitter` (a fraction, so thousands of messages sent together do not poll in
lockstep), and never later than `max_age` after the message was created: the
poll at that moment is its last.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from dlrhub.outbound.settings import PollerConfig


def poll_interval(attempts: int, config: PollerConfig, rng: random.Random | None = None) -> float:
    """Seconds until the next poll, after `attempts` polls so far."""
    exponent = min(attempts, 64)  # past this the cap has long been reached
    interval = min(config.first_interval * config.multiplier**exponent, config.max_interval)
    if config.jitter:
        interval *= 1 + (rng or random).uniform(-config.jitter, config.jitter)
    return interval


def next_poll_at(
    attempts: int,
    now: datetime,
    created_at: datetime,
    config: PollerConfig,
    rng: random.Random | None = None,
) -> datetime:
    deadline = created_at + timedelta(seconds=config.max_age)
    return min(now + timedelta(seconds=poll_interval(attempts, config, rng)), deadline)


def expired(now: datetime, created_at: datetime, config: PollerConfig) -> bool:
    """True once the message is older than `max_age`: stop polling it."""
    return now - created_at >= timedelta(seconds=config.max_age)
