"""The evaluator as a background `Service` of `dlrhub serve`: a pass every `interval`.

Every process that serves runs one; the alerts' lease lets one of them evaluate at a
time. The lease lasts `LEASE_INTERVALS` intervals: when its holder stops, it releases
the lease and another takes over at its next pass; when it dies, after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from dlrhub.alerts.evaluate import Evaluator
from dlrhub.store.alerts_sql import AlertLeaseLost
from dlrhub.store.base import StoreUnavailable

log = logging.getLogger(__name__)

LEASE_INTERVALS = 2.5


class AlertService:
    """Runs `evaluator` every `interval` seconds; opens and closes `resources` (the store,
    the alerts' database, the readings' stores) around it."""

    def __init__(self, evaluator: Evaluator, interval: float, resources: Sequence[Any]) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self.resources = tuple(resources)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for resource in self.resources:
            await resource.open()
        self._task = asyncio.create_task(self._run(), name="dlrhub-alerts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(StoreUnavailable):
            await self.evaluator.release()
        for resource in reversed(self.resources):
            await resource.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.evaluator.run_once()
            except (StoreUnavailable, AlertLeaseLost) as error:
                log.warning("alerts could not be evaluated now, will try again: %s", error)
            except Exception:  # a bug in one pass must not end the alerts for good
                log.exception("alerts evaluation failed; will try again")
            await asyncio.sleep(self.interval)
