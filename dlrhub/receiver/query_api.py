"""The read API under `/v1`: events, message state and history, quarantine.

A message's answer also lists every sink delivery attempt of its events
(`deliveries`, from the sink state: `dlrhub/store/sink_state.py`).

Reading needs the admin or a viewer token, changing the admin token
(`dlrhub/receiver/auth.py`). A wrong parameter is a
400 with the JSON error shape; an integer (a cursor, a limit, an id in the path)
is plain ASCII digits within its bounds, at most the store's `MAX_INTEGER`
(2^63-1), so none reaches the store to fail there as a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.event import EventType, Status, format_time
from dlrhub.normalizers.exchange import EXCHANGE_KINDS
from dlrhub.providers import ALIASES
from dlrhub.receiver.auth import Access, Endpoint
from dlrhub.receiver.errors import answering, error_response
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.reprocess import reprocess_entry
from dlrhub.store import EventFilter, Store, StoredCallback
from dlrhub.store.base import MAX_INTEGER
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable

MAX_LIMIT = 1000
MAX_TIME_TEXT = 64
# What `/v1/events` filters on, besides its cursors, limit and order (the console's form too).
EVENT_FILTERS = (
    "source",
    "provider",
    "message_id",
    "type",
    "status",
    "correlation_id",
    "recipient",
    "since",
    "until",
)
EVENT_PARAMETERS = frozenset({*EVENT_FILTERS, "after_seq", "before_seq", "order", "limit"})
E = TypeVar("E", EventType, Status)


class BadQuery(ValueError):
    pass


class QueryApi:
    def __init__(
        self, config: ReceiverSettings, store: Store, access: Access, sink_state: SinkStateStore
    ) -> None:
        self.config = config
        self.store = store
        self.access = access
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
        return self.access.guard(
            answering(endpoint, bad=(BadQuery,), unavailable=(SinkStateUnavailable,))
        )

    async def list_events(self, request: Request) -> Response:
        query = event_filter(request.query_params)
        events = await self.store.events(query)
        page: dict[str, object] = {"events": [event.to_dict() for event in events]}
        if query.descending:
            page["next_after_seq"] = max([query.after_seq, *(event.seq for event in events)])
            page["next_before_seq"] = events[-1].seq if events else query.before_seq
        else:
            page["next_after_seq"] = events[-1].seq if events else query.after_seq
        return JSONResponse(page)

    async def get_message(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        message_id = request.path_params["message_id"]
        story = await message_story(self.store, self.sink_state, provider, message_id)
        if story is None:
            return error_response(404, "not_found", f"no message {message_id!r} from {provider}")
        return JSONResponse(story)

    async def list_quarantine(self, request: Request) -> Response:
        params = request.query_params
        state = params.get("state")
        if state not in (None, "pending", "reprocessed"):
            raise BadQuery("state must be 'pending' or 'reprocessed'")
        after_id = whole_number("after_id", params.get("after_id"), 0, 0)
        limit = whole_number("limit", params.get("limit"), 100, 1, MAX_LIMIT)
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


def event_filter(params: Mapping[str, str]) -> EventFilter:
    """The `/v1/events` query parameters as a filter; `BadQuery` says what is wrong."""
    unknown = sorted(set(params) - EVENT_PARAMETERS)
    if unknown:
        raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    text = {name: params.get(name) or None for name in EVENT_FILTERS}
    provider = text["provider"]
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise BadQuery(f"order must be 'asc' or 'desc', not {order[:40]!r}")
    return EventFilter(
        source=text["source"],
        provider=ALIASES.get(provider, provider) if provider else None,
        message_id=text["message_id"],
        type=enum_value(EventType, "type", text["type"]),
        status=enum_value(Status, "status", text["status"]),
        correlation_id=text["correlation_id"],
        recipient=text["recipient"],
        since=iso_time("since", text["since"]),
        until=iso_time("until", text["until"]),
        after_seq=whole_number("after_seq", params.get("after_seq"), 0, 0),
        before_seq=whole_number("before_seq", params.get("before_seq"), 0, 0),
        descending=order == "desc",
        limit=whole_number("limit", params.get("limit"), 100, 1, MAX_LIMIT),
    )


async def message_story(
    store: Store, sink_state: SinkStateStore, provider: str, message_id: str
) -> dict[str, Any] | None:
    """One message's state, its events in log order, what each came from, and every sink
    delivery attempt of them; None: unknown.

    `events[].raw_id` names the stored callback or provider answer of each event in
    `raw` (several events may share one); both are as stored, so already redacted.
    """
    provider = ALIASES.get(provider, provider)
    state = await store.message(provider, message_id)
    history = await store.events(
        EventFilter(provider=provider, message_id=message_id, limit=MAX_LIMIT)
    )
    if state is None and not history:
        return None
    callbacks = await store.callbacks_of([event.seq for event in history])
    events = []
    for event in history:
        stored = callbacks.get(event.seq)
        events.append({**event.to_dict(), "raw_id": stored.id if stored else None})
    deliveries = await sink_state.delivery_attempts([event.id for event in history])
    return {
        "message": state.to_dict() if state else None,
        "events": events,
        "raw": {str(stored.id): raw_document(stored) for stored in callbacks.values()},
        "deliveries": [attempt.to_dict() for attempt in deliveries],
    }


def raw_document(stored: StoredCallback) -> dict[str, Any]:
    """A stored callback or provider exchange as JSON (redacted when it was stored).

    `origin` is `callback` for what a provider sent to `path`, `provider_answer` for
    an exchange dlrhub had with a provider's API (`kind` send, poll or report: then
    `query` holds the request's redacted parameters and `body` the answer).
    """
    raw = stored.raw
    answer = raw.kind in EXCHANGE_KINDS
    return {
        "id": stored.id,
        "origin": "provider_answer" if answer else "callback",
        "source": raw.source,
        "provider": raw.provider,
        "kind": raw.kind,
        "method": raw.method,
        "path": None if answer else f"/hooks/{raw.source}/{raw.kind}",
        "query": raw.query,
        "content_type": raw.content_type,
        "body": raw.body.decode("utf-8", "replace"),
        "remote_addr": raw.remote_addr,
        "received_at": format_time(raw.received_at),
    }


def iso_time(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 time (`2026-12-02T10:00:00Z`, a date, an offset); UTC when it has none."""
    if text is None:
        return None
    try:
        if len(text) > MAX_TIME_TEXT:
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        example = "2026-12-02T10:00:00Z"
        raise BadQuery(f"{name} must be an ISO 8601 time such as {example}, not {shown}") from None


def whole_number(
    name: str, text: str | None, default: int, low: int, high: int = MAX_INTEGER
) -> int:
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
    return whole_number("entry_id", request.path_params["entry_id"], 0, 0)


def enum_value(kind: type[E], name: str, text: str | None) -> E | None:
    if text is None or text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise BadQuery(f"{name} must be one of {choices}, not {text!r}") from None
