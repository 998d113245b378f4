"""`stdout` sink: print one JSON event per line, for trying dlrhub out.

No kind-specific keys. Lines go to the process's standard output, flushed
after every batch; pipe `dlrhub worker` into `jq` to watch events arrive.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlrhub.event import Event
from dlrhub.sinks.base import DeliveryFailed, Sink, SinkKind

if TYPE_CHECKING:
    from dlrhub.sinks.settings import SinkConfig


@dataclass(frozen=True, slots=True)
class StdoutOptions:
    def secrets(self) -> tuple[str, ...]:
        return ()


class StdoutSink:
    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def deliver(self, batch: Sequence[Event]) -> None:
        lines = "".join(event.to_json().decode() + "\n" for event in batch)
        try:
            sys.stdout.write(lines)
            sys.stdout.flush()
        except (OSError, ValueError) as error:
            raise DeliveryFailed(f"cannot write to standard output: {error}") from None


def create(config: SinkConfig) -> Sink:
    return StdoutSink()


KIND = SinkKind(
    name="stdout",
    options=StdoutOptions,
    create=create,
    batch_size=100,
    max_in_flight=1,
)
