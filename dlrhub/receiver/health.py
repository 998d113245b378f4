"""`/healthz` (the process answers), `/readyz` (callbacks can be stored), `/metrics`.

These routes need no token, so a failing `/readyz` says only that the store is
unavailable; why (its file, its DSN and host, the driver's error) is logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.receiver.errors import RETRY_AFTER_SECONDS, error_response, store_unavailable
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
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.outbound = outbound  # paused provider accounts, shown without failing readiness
        self.ingest_worker = ingest_worker

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
            await self.store.write(Probe())
        except StoreUnavailable as error:
            return store_unavailable(request.method, request.url.path, error)
        if self.ingest_worker is not None and (reason := self.ingest_worker.unavailable()):
            # A fixed sentence of the worker's (`IngestWorker.unavailable`), no internal detail.
            return error_response(
                503, "store_unavailable", reason, {"Retry-After": RETRY_AFTER_SECONDS}
            )
        answer: dict[str, object] = {"status": "ready", "store": "writable"}
        if self.outbound is not None:
            with contextlib.suppress(StoreUnavailable):
                if outbound := await self.outbound():
                    answer["outbound"] = outbound
        return JSONResponse(answer)

    async def metrics_page(self, request: Request) -> Response:
        # On a store error the gauge keeps its last value; readyz reports the store.
        with contextlib.suppress(StoreUnavailable):
            self.metrics.quarantine_pending.set(await self.store.quarantine_pending_count())
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)
