"""Wires configuration, store and routes into one Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.config import Config
from dlrhub.receiver.errors import EXCEPTION_HANDLERS
from dlrhub.receiver.health import Health
from dlrhub.receiver.hooks import Hooks
from dlrhub.receiver.metrics import Metrics
from dlrhub.receiver.openapi import openapi_document
from dlrhub.receiver.outbound_api import OutboundApi
from dlrhub.receiver.query_api import QueryApi
from dlrhub.store import SQLiteStore, Store


def open_store(config: Config, metrics: Metrics | None = None) -> Store:
    """The store the configuration names (not yet opened)."""
    on_commit = metrics.observe_commit if metrics is not None else None
    if config.store.backend == "postgres":
        from dlrhub.store.postgres import PostgresStore

        assert config.store.dsn is not None  # checked with the configuration
        return PostgresStore(
            config.store.dsn,
            schema=config.store.schema,
            max_batch=config.store.max_batch,
            on_commit=on_commit,
        )
    return SQLiteStore(config.sqlite_path, max_batch=config.store.max_batch, on_commit=on_commit)


class Service(Protocol):
    """A background task that lives as long as the app (sink workers, the poller)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def create_app(
    config: Config, store: Store | None = None, services: Sequence[Service] = ()
) -> Starlette:
    """The ASGI app; it opens the store, then starts `services`, on startup.

    Shutdown goes the other way: services stop before the store closes.
    """
    metrics = Metrics()
    store = store or open_store(config, metrics)
    document = openapi_document()
    outbound = OutboundApi(config, store)  # also a service: opens the tracking tables
    services = [outbound, *services]

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        started: list[Service] = []
        try:
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await service.stop()
            await store.close()

    routes = [
        *Hooks(config, store, metrics).routes(),
        *QueryApi(config, store).routes(),
        *outbound.routes(),
        *Health(store, metrics, outbound.readiness).routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.store = store
    return app
