"""Sinks in the API and the console: state, lag, throughput, pause, replay, dead letters.

`SinksApi` is the `/v1/sinks` API, what `dlrhub sinks|replay|dlq` do over HTTP
(through `dlrhub/sinks/operations.py`, the commands' own functions). It acts on
the durable sink state only, so it works whichever process delivers: the runner
sees a pause, a queued replay or a dead-letter retry within its control
interval. It is a `Service` too: it opens its connection to the sink state when
the app starts. `SinkPages` are the console's pages over the same data functions.

Throughput is derived from the durable `delivered` count: each read of the
reports keeps a sample per sink, and the rate is the growth between the oldest
sample of the last `THROUGHPUT_WINDOW` seconds and now, per minute. It is `null`
until this process has two samples at least `THROUGHPUT_MIN_SPAN` apart (the
list page refreshes itself, which takes them).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import render
from dlrhub.event import parse_time
from dlrhub.receiver.auth import Access, Endpoint, Principal
from dlrhub.receiver.errors import answering
from dlrhub.sinks.operations import (
    SinkReport,
    UnknownSink,
    queue_replay,
    replay_range,
    retry_dead_letters,
    set_paused,
    sink_config,
    sink_reports,
)
from dlrhub.sinks.service import open_sink_state
from dlrhub.sinks.settings import SinksSettings
from dlrhub.store import Store, StoreUnavailable
from dlrhub.store.base import MAX_INTEGER
from dlrhub.store.sink_state import DeadLetter, SinkStateStore, SinkStateUnavailable

MAX_BODY = 64 * 1024
MAX_IDS = 10_000
MAX_LIMIT = 1000
THROUGHPUT_WINDOW = 300.0  # seconds
THROUGHPUT_MIN_SPAN = 5.0  # seconds
DEAD_LETTER_STATES = ("dead", "retry")


class BadRequest(ValueError):
    """A body or parameter the API refuses (400), with the reason."""


class Throughput:
    """Delivered events per minute, from samples of each sink's durable `delivered` count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.samples: dict[str, deque[tuple[float, int]]] = {}

    def per_minute(self, sink: str, delivered: int) -> float | None:
        now = self.clock()
        samples = self.samples.setdefault(sink, deque())
        while samples and now - samples[0][0] > THROUGHPUT_WINDOW:
            samples.popleft()
        if samples and samples[-1][1] > delivered:  # the sink's state was reset
            samples.clear()
        samples.append((now, delivered))
        first_at, first_count = samples[0]
        span = now - first_at
        if span < THROUGHPUT_MIN_SPAN:
            return None
        return round((delivered - first_count) * 60 / span, 1)


class SinksApi:
    """`/v1/sinks...`: reports, pause and resume, replay, dead letters (a `Service`)."""

    def __init__(self, config: SinksSettings, store: Store, access: Access) -> None:
        self.config = config
        self.store = store
        self.access = access
        self.state: SinkStateStore = open_sink_state(config)
        self.throughput = Throughput()

    async def start(self) -> None:
        await self.state.open()

    async def stop(self) -> None:
        await self.state.close()

    def routes(self) -> list[Route]:
        guard = self._guard
        return [
            Route("/v1/sinks", guard(self.list_sinks), methods=["GET"]),
            Route("/v1/sinks/{name}", guard(self.get_sink), methods=["GET"]),
            Route("/v1/sinks/{name}/pause", guard(self.pause), methods=["POST"]),
            Route("/v1/sinks/{name}/resume", guard(self.resume), methods=["POST"]),
            Route("/v1/sinks/{name}/replay", guard(self.replay), methods=["POST"]),
            Route("/v1/sinks/{name}/dead-letters", guard(self.list_dead_letters), methods=["GET"]),
            Route(
                "/v1/sinks/{name}/dead-letters/retry",
                guard(self.retry_dead_letters),
                methods=["POST"],
            ),
            Route(
                "/v1/sinks/{name}/dead-letters/drop",
                guard(self.drop_dead_letters),
                methods=["POST"],
            ),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        return self.access.guard(
            answering(
                endpoint,
                bad=(BadRequest,),
                missing=(UnknownSink,),
                unavailable=(SinkStateUnavailable,),
            )
        )

    # The data functions the API and the pages share -------------------------

    async def reports(self) -> list[dict[str, Any]]:
        """Every sink's report, with its throughput (configured sinks first)."""
        return [self._with_throughput(report) for report in await self._reports()]

    async def report(self, name: str) -> dict[str, Any]:
        """One sink's report, configured or with state left from an earlier configuration."""
        for report in await self._reports():
            if report.name == name:
                return self._with_throughput(report)
        sink_config(self.config, name)  # not configured either: UnknownSink naming the sinks
        raise UnknownSink(f"no sink named {name!r}")

    async def dead_letters(
        self, name: str, *, state: str | None, after_id: int, limit: int
    ) -> dict[str, Any]:
        sink = sink_config(self.config, name)
        letters = await self.state.dead_letters(
            sink.name,
            state=state,  # type: ignore[arg-type]  # checked: one of DEAD_LETTER_STATES
            after_id=after_id,
            limit=limit,
        )
        return {
            "dead_letters": [_dead_letter(letter) for letter in letters],
            "next_after_id": letters[-1].id if letters else after_id,
        }

    async def _reports(self) -> list[SinkReport]:
        return await sink_reports(self.config, self.store, self.state)

    def _with_throughput(self, report: SinkReport) -> dict[str, Any]:
        return {
            **report.to_dict(),
            "throughput": self.throughput.per_minute(report.name, report.delivered),
        }

    # The routes ---------------------------------------------------------------

    async def list_sinks(self, request: Request) -> Response:
        _no_query(request)
        return JSONResponse({"sinks": await self.reports()})

    async def get_sink(self, request: Request) -> Response:
        _no_query(request)
        return JSONResponse(await self.report(request.path_params["name"]))

    async def pause(self, request: Request) -> Response:
        return await self._set_paused(request, paused=True)

    async def resume(self, request: Request) -> Response:
        return await self._set_paused(request, paused=False)

    async def _set_paused(self, request: Request, *, paused: bool) -> Response:
        sink = sink_config(self.config, request.path_params["name"])
        _known(await _json_body(request, required=False), set())
        await set_paused(self.store, self.state, sink, paused=paused)
        detail = f"sink {sink.name} {'paused' if paused else 'resumed'}"
        return JSONResponse({"sink": await self.report(sink.name), "detail": detail})

    async def replay(self, request: Request) -> Response:
        sink = sink_config(self.config, request.path_params["name"])
        body = await _json_body(request, required=True)
        _known(body, {"since_seq", "since", "until_seq", "dry_run"})
        if ("since_seq" in body) == ("since" in body):
            raise BadRequest("give exactly one of 'since_seq' (a seq) or 'since' (an ISO time)")
        after_seq = _whole(body, "since_seq")
        since = _moment(body, "since")
        until_seq = _whole(body, "until_seq")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise BadRequest("'dry_run' must be true or false")
        if dry_run:
            wanted = await replay_range(
                self.store, after_seq=after_seq, since=since, until_seq=until_seq
            )
            preview = {"events": wanted.events, "after_seq": wanted.after_seq}
            preview["until_seq"] = wanted.until_seq
            return JSONResponse({**preview, "detail": _preview_text(sink.name, **preview)})
        job = await queue_replay(
            self.store, self.state, sink, after_seq=after_seq, since=since, until_seq=until_seq
        )
        if job is None:
            nothing = "nothing to replay: no events in that range"
            return JSONResponse({"job": None, "detail": nothing})
        detail = (
            f"replay {job.id} queued: events {job.after_seq + 1}..{job.until_seq}"
            f" to sink {sink.name} (sent by the running serve or worker)"
        )
        job_fields = {"id": job.id, "after_seq": job.after_seq, "until_seq": job.until_seq}
        return JSONResponse({"job": job_fields, "detail": detail}, status_code=202)

    async def list_dead_letters(self, request: Request) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - {"state", "after_id", "limit"})
        if unknown:
            raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}")
        state = params.get("state")
        if state is not None and state not in DEAD_LETTER_STATES:
            raise BadRequest("state must be 'dead' or 'retry'")
        page = await self.dead_letters(
            request.path_params["name"],
            state=state,
            after_id=_integer("after_id", params.get("after_id"), 0, 0),
            limit=_integer("limit", params.get("limit"), 100, 1, MAX_LIMIT),
        )
        return JSONResponse(page)

    async def retry_dead_letters(self, request: Request) -> Response:
        sink = sink_config(self.config, request.path_params["name"])
        ids = _dead_letter_ids(await _json_body(request, required=True))
        count = await retry_dead_letters(self.store, self.state, sink, ids)
        detail = f"{count} dead letter(s) queued for delivery to sink {sink.name}"
        return JSONResponse({"retried": count, "detail": detail})

    async def drop_dead_letters(self, request: Request) -> Response:
        sink = sink_config(self.config, request.path_params["name"])
        ids = _dead_letter_ids(await _json_body(request, required=True))
        count = await self.state.drop_dead_letters(sink.name, ids)
        detail = f"{count} dead letter(s) of sink {sink.name} dropped"
        return JSONResponse({"dropped": count, "detail": detail})


class SinkPages:
    """`/console/sinks` and `/console/sinks/{name}`, over `SinksApi`'s data functions."""

    def __init__(self, site: ConsoleSite, api: SinksApi) -> None:
        self.site = site
        self.api = api

    def routes(self) -> list[Route]:
        return [
            Route("/console/sinks", self.site.page(self.sinks), methods=["GET"]),
            Route("/console/sinks/{name}", self.site.page(self.sink), methods=["GET"]),
        ]

    async def sinks(self, request: Request, principal: Principal) -> Response:
        try:
            reports = await self.api.reports()
        except (StoreUnavailable, SinkStateUnavailable):
            return _unavailable(request, principal)
        return render(request, "sinks.html", {"sinks": reports}, principal, section="sinks")

    async def sink(self, request: Request, principal: Principal) -> Response:
        name = request.path_params["name"]
        params = request.query_params
        context: dict[str, Any] = {"name": name, "error": None, "state": "", "after_id": 0}
        try:
            context["sink"] = await self.api.report(name)
            context["configured"] = context["sink"]["state"] != "unconfigured"
            state = params.get("state") or None
            if state is not None and state not in DEAD_LETTER_STATES:
                raise BadRequest("state must be 'dead' or 'retry'")
            after_id = _integer("after_id", params.get("after_id"), 0, 0)
            context.update(state=state or "", after_id=after_id)
            context["page"] = (
                await self.api.dead_letters(name, state=state, after_id=after_id, limit=100)
                if context["configured"]
                else {"dead_letters": [], "next_after_id": 0}
            )
        except UnknownSink as error:
            return render(
                request,
                "error.html",
                {"title": "No such sink", "detail": str(error)},
                principal,
                section="sinks",
                status_code=404,
            )
        except BadRequest as error:
            context.update(error=str(error), page={"dead_letters": [], "next_after_id": 0})
            return render(
                request, "sink.html", context, principal, section="sinks", status_code=400
            )
        except (StoreUnavailable, SinkStateUnavailable):
            return _unavailable(request, principal)
        return render(request, "sink.html", context, principal, section="sinks")


def _unavailable(request: Request, principal: Principal) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Sink state unavailable", "detail": "The store cannot be read now; retry."},
        principal,
        section="sinks",
        status_code=503,
    )


def _dead_letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        **letter.to_dict(),
        "provider": letter.event.provider,
        "message_id": letter.event.message_id,
    }


def _preview_text(sink: str, *, events: int, after_seq: int, until_seq: int) -> str:
    if events == 0:
        return f"nothing to replay to sink {sink}: no events in that range"
    return (
        f"{events} event(s) would be replayed to sink {sink}: seq {after_seq + 1}..{until_seq}"
        " (before the sink's filter)"
    )


# Strict parsing ----------------------------------------------------------------


def _no_query(request: Request) -> None:
    if request.query_params:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(request.query_params))}")


async def _json_body(request: Request, *, required: bool) -> dict[str, Any]:
    """The JSON object sent; an empty body is `{}` where nothing is required."""
    body = await request.body()
    if not body.strip() and not required:
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send a JSON body with Content-Type: application/json")
    if len(body) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document


def _known(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INTEGER


def _whole(body: dict[str, Any], key: str) -> int | None:
    if key not in body:
        return None
    value = body[key]
    if not _is_whole(value):
        raise BadRequest(f"'{key}' must be a whole number from 0 to {MAX_INTEGER}")
    return int(value)


def _moment(body: dict[str, Any], key: str) -> datetime | None:
    if key not in body:
        return None
    value = body[key]
    if not isinstance(value, str):
        raise BadRequest(f"'{key}' must be an ISO 8601 time such as 2026-11-20T10:00:00Z")
    try:
        return parse_time(value)  # without an offset: UTC
    except (ValueError, OverflowError):
        raise BadRequest(
            f"'{key}' is not an ISO 8601 time such as 2026-11-20T10:00:00Z (no offset: UTC)"
        ) from None


def _dead_letter_ids(body: dict[str, Any]) -> list[int] | None:
    """`{"ids": [...]}` (those) or `{"all": true}` (None: every dead letter of the sink)."""
    _known(body, {"ids", "all"})
    if ("ids" in body) == ("all" in body):
        raise BadRequest("give exactly one of 'ids' (a list of dead letter ids) or 'all': true")
    if "all" in body:
        if body["all"] is not True:
            raise BadRequest("'all' must be true (or give 'ids')")
        return None
    ids = body["ids"]
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_IDS
        or not all(_is_whole(item) for item in ids)
    ):
        raise BadRequest(f"'ids' must be a list of 1 to {MAX_IDS} dead letter ids (whole numbers)")
    return [int(item) for item in ids]


def _integer(name: str, text: str | None, default: int, low: int, high: int = MAX_INTEGER) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 19 or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)
