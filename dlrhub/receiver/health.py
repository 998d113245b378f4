"""`/healthz` (the process answers), `/readyz` (callbacks can be stored), `/metrics`.

`/readyz` commits a probe the way callbacks are committed (through the ingest
worker when there is one, and through the receiver's own store), and answers
503 if that fails or takes over `server.ingest_timeout`: it answers, however
stuck the store is. While the ingest worker is known to be stalled (a callback
missed its deadline and the worker has not answered since), it answers 503 at
once. These routes need no token, so a failing `/readyz` says only that the
store is unavailable; why (its file, its DSN and host, the driver's error) is
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.receiver.delivery_metrics import DeliveryMetrics
from dlrhub.receiver.errors import ReceiverBusy, store_unavailable
from dlrhub.receiver.ingest_worker import IngestWorker
from dlrhub.receiver.metrics import Metrics
from dlrhub.store import Probe, Store, StoreUnavailable


class Health:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        outbound: Callable[[], Awaitable[dict[str, object]]] | None = None,
        ingest_worker: IngestWorker | None = None,
        *,
        timeout: float,  # server.ingest_timeout
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.outbound = outbound  # paused provider accounts, shown without failing readiness
        self.ingest_worker = ingest_worker
        self.timeout = timeout
        self.delivery = DeliveryMetrics(store)  # per provider, from the delivery rollups
        metrics.registry.register(self.delivery)

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            if self.ingest_worker is not None:
                if reason := self.ingest_worker.unavailable():
                    raise ReceiverBusy(reason)
                await self.ingest_worker.probe()  # within the timeout
            await self._probe_store()
        except StoreUnavailable as error:
            return store_unavailable(request.method, request.url.path, error)
        answer: dict[str, object] = {"status": "ready", "store": "writable"}
        if self.outbound is not None:
            with contextlib.suppress(StoreUnavailable):
                if outbound := await self.outbound():
                    answer["outbound"] = outbound
        return JSONResponse(answer)

    async def _probe_store(self) -> None:
        try:
            await asyncio.wait_for(self.store.write(Probe()), self.timeout)
        except TimeoutError:
            raise ReceiverBusy(
                f"the store did not commit a probe within {self.timeout:g} s"
            ) from None

    async def metrics_page(self, request: Request) -> Response:
        # On a store error the gauge keeps its last value; readyz reports the store.
        with contextlib.suppress(StoreUnavailable):
            self.metrics.quarantine_pending.set(await self.store.quarantine_pending_count())
        await self.delivery.refresh()
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
