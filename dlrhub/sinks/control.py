"""Whether a runner may deliver now: stop, pause and disable, and cutting waits short.

Pause and disable come from the sink state (`dlrhub sinks pause|resume`, read
every control interval) or from the sink itself (`SinkPaused`, `SinkGone`).
Like `stop()`, they wake every wait, so they take effect before the next
attempt instead of after a backoff of up to a minute.
"""

from __future__ import annotations

import asyncio
import contextlib

from dlrhub.sinks.reporting import SinkStats, log
from dlrhub.store.sink_state import SinkStateStore


class Interrupted(Exception):
    """Stop delivering now: the runner is stopping, or the sink was paused or disabled."""


class Control:
    """The runner's stop, pause and disable flags, and the event that cuts its waits short."""

    def __init__(self, name: str, state: SinkStateStore, stats: SinkStats) -> None:
        self.name = name
        self.state = state
        self.stats = stats
        self.stopping = False
        self.paused = False
        self.disabled: str | None = None
        self._wake = asyncio.Event()  # set on stop, pause or disable: cut sleeps short
        self._release = asyncio.Event()  # set on stop or resume: end a held runner's wait
        self._release.set()
        self._new_events = asyncio.Event()  # set when the store says it committed events

    @property
    def held(self) -> bool:
        """Paused or disabled: nothing is delivered until an operator resumes the sink."""
        return self.paused or bool(self.disabled)

    def reset(self) -> None:
        """Before the runner starts (again): not stopping, flags as the state will say."""
        self.stopping = False
        self.apply(self.paused, self.disabled)

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()
        self._release.set()

    def apply(self, paused: bool, disabled: str | None) -> None:
        """Take the pause and disable flags as the sink state holds them."""
        self.paused, self.disabled = paused, disabled
        if paused or disabled or self.stopping:
            self._wake.set()
            self.stats.state = "disabled" if disabled else "paused" if paused else self.stats.state
        else:
            self._wake.clear()
        if self.held and not self.stopping:
            self._release.clear()
        else:
            self._release.set()

    async def pause(self, reason: str) -> None:
        """The sink reported a problem at its end: hold it until `dlrhub sinks resume`."""
        log.error("sink %s is paused until 'dlrhub sinks resume': %s", self.name, reason)
        await self.state.set_paused(self.name, True)
        self.apply(True, self.disabled)

    async def disable(self, reason: str) -> None:
        """The sink said it is gone: hold it until `dlrhub sinks resume`."""
        log.error("sink %s is disabled until 'dlrhub sinks resume': %s", self.name, reason)
        await self.state.disable(self.name, reason)
        self.apply(self.paused, reason)

    async def idle(self, seconds: float) -> None:
        """Wait `seconds`, or less if the runner is stopped, paused or disabled meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def new_events(self) -> None:
        """The store committed events (PostgreSQL's NOTIFY): end an idle wait for work now."""
        self._new_events.set()

    async def wait_for_work(self, seconds: float) -> None:
        """Wait `seconds` for new events, or less if they come or the runner is interrupted.

        Cleared after the wait, not before: events notified during the last round
        end this wait at once, and the round after reads them.
        """
        wake = asyncio.ensure_future(self._wake.wait())
        events = asyncio.ensure_future(self._new_events.wait())
        try:
            await asyncio.wait((wake, events), timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            events.cancel()
        self._new_events.clear()

    async def wait_while_held(self, seconds: float) -> None:
        """Wait `seconds`, or less if the runner is stopped or resumed meanwhile.

        Not `idle`: while held, the wake event stays set, and `idle` would return at once.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), timeout=seconds)

    async def sleep_or_interrupt(self, seconds: float) -> None:
        await self.idle(seconds)
        self.raise_if_interrupted()

    def raise_if_interrupted(self) -> None:
        if self.stopping or self.paused or self.disabled:
            raise Interrupted
