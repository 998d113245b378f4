"""The one protocol every sink kind implements, and how a delivery can fail.

A sink gets batches of events in store order and either returns (every event
of the batch is acknowledged by the downstream system) or raises one of the
errors below, which tell the engine what to do next:

| error              | meaning                                  | engine                           |
|--------------------|------------------------------------------|----------------------------------|
| `SinkUnavailable`  | cannot reach the sink, or it asks us to  | retry with backoff (or           |
|                    | come back later (429/503, broker down)   | `retry_after`) for as long as it |
|                    |                                          | lasts: no attempt, no age counts |
| `DeliveryFailed`   | the sink answered, but not with success  | retry with backoff; after        |
|                    | (5xx, timeout, broker nack)              | max_attempts or max_age: dead    |
| `DeliveryRejected` | the sink refused these events for good   | dead letter without retrying     |
| `SinkGone`         | the endpoint is gone (HTTP 410)          | disable until `sinks resume`     |
| `SinkPaused`       | a configuration problem at the endpoint  | pause until `sinks resume`       |

Anything else a sink raises counts as `DeliveryFailed`. Error texts end up in
logs, `sinks status` and the dead-letter table: they must not hold secrets (the
engine also removes the configured ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dlrhub.event import Event

if TYPE_CHECKING:
    from dlrhub.sinks.settings import SinkConfig


class DeliveryError(Exception):
    """Base of the errors a sink raises; `retry_after` is in seconds, if the sink said."""

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class SinkUnavailable(DeliveryError):
    """The sink cannot take anything right now (down, unreachable, throttling)."""


class DeliveryFailed(DeliveryError):
    """This attempt failed; another one may succeed."""


class DeliveryRejected(DeliveryError):
    """The sink will never accept these events; retrying would only repeat the answer."""


class SinkGone(DeliveryError):
    """The sink says it no longer exists (HTTP 410 Gone)."""


class SinkPaused(DeliveryError):
    """The sink is misconfigured at the other end; stop until an operator resumes it."""


class Sink(Protocol):
    async def open(self) -> None:
        """Prepare; must not fail because the downstream system is down (connect lazily)."""
        ...

    async def deliver(self, batch: Sequence[Event]) -> None:
        """Hand over `batch` (store order) and return once the sink acknowledged all of it."""
        ...

    async def close(self) -> None: ...


class SinkOptions(Protocol):
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or error texts."""
        ...


@dataclass(frozen=True, slots=True)
class SinkKind:
    """What the configuration and the engine need to know about one kind of sink."""

    name: str
    options: type[SinkOptions]  # its keys, read by `dlrhub/settings_schema.py`
    create: Callable[[SinkConfig], Sink]
    batch_size: int = 100
    max_in_flight: int = 1
