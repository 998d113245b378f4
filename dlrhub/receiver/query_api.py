"""The read API under `/v1`: events, message state and history, quarantine.

A message's answer also lists every sink delivery attempt of its events
(`deliveries`, from the sink state: `dlrhub/store/sink_state.py`).

Every route needs `Authorization: Bearer <admin token>`. A wrong parameter is a
400 with the JSON error shape; an integer (a cursor, a limit, an id in the path)
is plain ASCII digits within its bounds, at most the store's `MAX_INTEGER`
(2^63-1), so none reaches the store to fail there as a 500.
"""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.event import EventType, Status
from dlrhub.providers import ALIASES
from dlrhub.receiver.auth import Endpoint, require_admin
from dlrhub.receiver.errors import error_response, store_unavailable
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.reprocess import reprocess_entry
from dlrhub.store import EventFilter, Store, StoreUnavailable
from dlrhub.store.base import MAX_INTEGER
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable

MAX_LIMIT = 1000
E = TypeVar("E", EventType, Status)


class BadQuery(ValueError):
    pass


class QueryApi:
    def __init__(self, config: ReceiverSettings, store: Store, sink_state: SinkStateStore) -> None:
        self.config = config
        self.store = store
        self.sink_state = sink_state

    def routes(self) -> list[Route]:
        return [
            Route("/v1/events", self._guard(self.list_events), methods=["GET"]),
            Route(
                "/v1/messages/{provider}/{message_id:path}",
                self._guard(self.get_message),
                methods=["GET"],
            ),
            Route("/v1/quarantine", self._guard(self.list_quarantine), methods=["GET"]),
            # `{entry_id}`, not `{entry_id:int}`: a bad id is a 400 saying why, not a 404.
            Route(
                "/v1/quarantine/{entry_id}",
                self._guard(self.quarantine_entry),
                methods=["GET", "DELETE"],
            ),
            Route(
                "/v1/quarantine/{entry_id}/reprocess",
                self._guard(self.reprocess),
                methods=["POST"],
            ),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        async def answered(request: Request) -> Response:
            try:
                return await endpoint(request)
            except BadQuery as error:
                return error_response(400, "bad_request", str(error))
            except (StoreUnavailable, SinkStateUnavailable) as error:
                return store_unavailable(request.method, request.url.path, error)

        return require_admin(self.config.admin_token, answered)

    async def list_events(self, request: Request) -> Response:
        params = request.query_params
        known = {"source", "provider", "message_id", "type", "status", "after_seq", "limit"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
        provider = params.get("provider")
        query = EventFilter(
            source=params.get("source"),
            provider=ALIASES.get(provider, provider) if provider else None,
            message_id=params.get("message_id"),
            type=_enum(EventType, "type", params.get("type")),
            status=_enum(Status, "status", params.get("status")),
            after_seq=_int("after_seq", params.get("after_seq"), 0, 0),
            limit=_int("limit", params.get("limit"), 100, 1, MAX_LIMIT),
        )
        events = await self.store.events(query)
        next_after = events[-1].seq if events else query.after_seq
        return JSONResponse(
            {"events": [event.to_dict() for event in events], "next_after_seq": next_after}
        )

    async def get_message(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        provider = ALIASES.get(provider, provider)
        message_id = request.path_params["message_id"]
        state = await self.store.message(provider, message_id)
        history = await self.store.events(
            EventFilter(provider=provider, message_id=message_id, limit=MAX_LIMIT)
        )
        if state is None and not history:
            return error_response(404, "not_found", f"no message {message_id!r} from {provider}")
        deliveries = await self.sink_state.delivery_attempts([event.id for event in history])
        return JSONResponse(
            {
                "message": state.to_dict() if state else None,
                "events": [event.to_dict() for event in history],
                "deliveries": [attempt.to_dict() for attempt in deliveries],
            }
        )

    async def list_quarantine(self, request: Request) -> Response:
        params = request.query_params
        state = params.get("state")
        if state not in (None, "pending", "reprocessed"):
            raise BadQuery("state must be 'pending' or 'reprocessed'")
        after_id = _int("after_id", params.get("after_id"), 0, 0)
        limit = _int("limit", params.get("limit"), 100, 1, MAX_LIMIT)
        entries = await self.store.quarantine_entries(
            state=state,  # type: ignore[arg-type]
            after_id=after_id,
            limit=limit,
        )
        return JSONResponse(
            {
                "entries": [entry.to_dict() for entry in entries],
                "next_after_id": entries[-1].id if entries else after_id,
            }
        )

    async def quarantine_entry(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self.drop_quarantine(request)
        return await self.get_quarantine(request)

    async def get_quarantine(self, request: Request) -> Response:
        entry = await self.store.quarantine_entry(_entry_id(request))
        if entry is None:
            return error_response(404, "not_found", "no such quarantine entry")
        return JSONResponse(entry.to_dict(with_raw=True))

    async def drop_quarantine(self, request: Request) -> Response:
        entry_id = _entry_id(request)
        if not await self.store.drop_quarantine([entry_id]):
            return error_response(404, "not_found", "no such quarantine entry")
        return Response(status_code=204)

    async def reprocess(self, request: Request) -> Response:
        entry = await self.store.quarantine_entry(_entry_id(request))
        if entry is None:
            return error_response(404, "not_found", "no such quarantine entry")
        result = await reprocess_entry(self.store, self.config, entry)
        return JSONResponse(
            {"status": result.outcome, "event_ids": [event.id for event in result.events]}
        )


def _int(name: str, text: str | None, default: int, low: int, high: int = MAX_INTEGER) -> int:
    """`text` as an integer from `low` to `high`; `default` when absent or empty.

    Only ASCII digits: `int()` would also take `+5`, ` 5`, `1_000` and other
    scripts' digits, and a thousand digits would cost it time before failing.
    """
    if text is None or text == "":
        return default
    if text.isascii() and text.isdigit() and len(text) <= len(str(high)):
        value = int(text)
        if low <= value <= high:
            return value
    shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
    raise BadQuery(f"{name} must be a whole number from {low} to {high}, not {shown}")


def _entry_id(request: Request) -> int:
    return _int("entry_id", request.path_params["entry_id"], 0, 0)


def _enum(kind: type[E], name: str, text: str | None) -> E | None:
    if text is None or text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise BadQuery(f"{name} must be one of {choices}, not {text!r}") from None
