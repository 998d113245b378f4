"""Wires configuration, store and routes into one Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from dlrhub.config import Config
from dlrhub.console.alerts import AlertPages
from dlrhub.console.analytics import AnalyticsPages
from dlrhub.console.assets import static_route
from dlrhub.console.docs_page import docs_routes
from dlrhub.console.events import EventsPages
from dlrhub.console.messages import MessagePages
from dlrhub.console.overview import Overview, OverviewApi, OverviewPages
from dlrhub.console.poller import PollerPages
from dlrhub.console.quarantine import QuarantinePages
from dlrhub.console.sinks import SinkPages, SinksApi
from dlrhub.console.site import ConsoleSite
from dlrhub.receiver.access_log import RequestLog
from dlrhub.receiver.alerts_api import AlertsApi
from dlrhub.receiver.analytics_api import AnalyticsApi
from dlrhub.receiver.auth import Access, Tokens
from dlrhub.receiver.errors import EXCEPTION_HANDLERS
from dlrhub.receiver.health import Health
from dlrhub.receiver.hooks import PREFIX as HOOKS_PREFIX
from dlrhub.receiver.hooks import Hooks
from dlrhub.receiver.ingest import Ingest, Ingester
from dlrhub.receiver.ingest_worker import IngestWorker
from dlrhub.receiver.metrics import Metrics
from dlrhub.receiver.openapi import openapi_document
from dlrhub.receiver.outbound_api import OutboundApi
from dlrhub.receiver.quarantine_bulk import QuarantineBulkApi
from dlrhub.receiver.query_api import QueryApi
from dlrhub.receiver.routing import one_route_per_path
from dlrhub.receiver.search_api import SearchApi
from dlrhub.receiver.sessions import Sessions
from dlrhub.receiver.tracking_api import PollerApi
from dlrhub.store import Store
from dlrhub.store.settings import open_store


class DlrhubApp(Starlette):
    """Starlette for the API, with provider callbacks (`/hooks/...`) sent straight to `Hooks`.

    Callbacks are the hot path: skipping Starlette's middleware and routing for them
    saves about a third of what the bare framework costs per request. `Hooks` gives
    its own JSON answers for every outcome, errors included.

    Paths are matched exactly: `/v1/events/` answers 404 like any unknown path.
    Starlette's router would redirect it to `/v1/events`, with a `Location` built
    from the request's Host header, which the client chooses (a redirect to any
    host, or a poisoned cache behind a proxy).
    """

    def __init__(
        self,
        hooks: Hooks,
        *,
        access_log: bool = True,
        secrets: Collection[str] = (),
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.router.redirect_slashes = False
        self.hooks = hooks
        # Every HTTP request gets its id and access line here (dlrhub/receiver/access_log.py).
        self.requests = RequestLog(self._route, access_log=access_log, secrets=secrets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.requests(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith(HOOKS_PREFIX):
            await self.hooks(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def session_key(config: Config, store: Store) -> Callable[[], Awaitable[str]]:
    """Where console sessions get their signing key: `server.session_key`, else the one
    kept in the store, the same for every receiver sharing it."""
    configured = config.server.session_key

    async def key() -> str:
        return configured or await store.shared_secret("console-session")

    return key


class Service(Protocol):
    """A background task that lives as long as the app (sink workers, the poller)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def create_app(
    config: Config,
    store: Store | None = None,
    services: Sequence[Service] = (),
    *,
    ingest_worker: bool = False,
    ingest_socket: Path | None = None,
    process_label: str | None = None,
) -> DlrhubApp:
    """The ASGI app; it opens the store, then starts `services`, on startup.

    Shutdown goes the other way: services stop before the store closes. With
    `ingest_worker`, callbacks are normalized and committed by a worker process
    over its own connection to the configured store (`dlrhub serve` does this
    unless `server.ingest_worker` is false; see dlrhub/receiver/ingest_worker.py).
    With `ingest_socket`, that worker is the one listening there, shared by several
    receiver processes. `process_label` names this receiver process in the
    `X-Dlrhub-Receiver` header of callback answers (`server.processes` > 1).
    """
    metrics = Metrics(process_label)
    store = store or open_store(
        config.store, config.data_dir, metrics.observe_commit, place=config.number_places()
    )
    document = openapi_document()
    tokens = Tokens(config.admin_token, config.viewer_tokens)
    sessions = Sessions(
        tokens,
        session_key(config, store),
        max_age=config.server.session_max_age,
        public_url=config.server.public_url,
    )
    access = Access(tokens, sessions.read)
    outbound = OutboundApi(config, store, access)  # also a service: opens the tracking tables
    sinks = SinksApi(config, store, access)  # also a service: opens the sink state
    alerts = AlertsApi(config.store, config.data_dir, access)  # a service: opens its tables
    services = [outbound, sinks, alerts, *services]
    worker = IngestWorker(config, metrics, connect=ingest_socket) if ingest_worker else None
    ingest: Ingester = worker if worker is not None else Ingest(config, store)
    if worker is not None:
        services.insert(0, worker)  # started after the store opens, stopped before it closes

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

    poller = outbound.poller
    overview = Overview(store, config.store.backend, sinks, poller, alerts.alerts)
    routes: list[BaseRoute] = [
        *QuarantineBulkApi(config, store, access).routes(),
        *QueryApi(config, store, access, sinks.state).routes(),
        *SearchApi(store, access).routes(),
        *AnalyticsApi(store, access).routes(),
        *outbound.routes(),
        *sinks.routes(),
        *PollerApi(poller, access).routes(),
        *OverviewApi(overview, access).routes(),
        *alerts.routes(),
        *Health(
            store, metrics, outbound.readiness, worker, timeout=config.server.ingest_timeout
        ).routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
        *docs_routes(),
        static_route(),
    ]
    if config.server.console:
        site = ConsoleSite(access, sessions)
        routes += [*site.routes(), *OverviewPages(site, overview).routes()]
        routes += [*SinkPages(site, sinks).routes()]
        routes += [
            *EventsPages(site, store, config).routes(),
            *MessagePages(site, store, sinks.state).routes(),
            *AnalyticsPages(site, store).routes(),
            *AlertPages(site, alerts.alerts, config.alerts).routes(),
        ]
        routes += [*QuarantinePages(site, store).routes(), *PollerPages(site, poller).routes()]
    app = DlrhubApp(
        Hooks(config, ingest, metrics, process_label),
        routes=one_route_per_path(routes),
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
        access_log=config.server.access_log,
        secrets=[
            *tokens.secrets,
            config.server.session_key or "",
            *(source.token for source in config.sources),
        ],
    )
    app.state.metrics = metrics
    app.state.store = store
    app.state.ingest_worker = worker
    return app
