"""`GET /v1/messages`: find messages by id, your ref, recipient, provider, source,
status and time, newest first (the store's indexed search, `dlrhub/store/message_search.py`).

The console's Messages page reads through `read_search` and `search_page` too, so a
script with a token finds exactly what the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.providers import ALIASES
from dlrhub.receiver.auth import Access
from dlrhub.receiver.errors import error_response, store_unavailable
from dlrhub.receiver.query_api import BadQuery, iso_time, whole_number
from dlrhub.store import BadSearch, MessageSearch, MessageState, Store, StoreUnavailable
from dlrhub.store.base import MAX_SEARCH_LIMIT

SEARCH_KEYS = (
    "message_id",
    "correlation_id",
    "recipient",
    "provider",
    "source",
    "status",
    "since",
    "until",
    "before_seq",
    "limit",
)
DEFAULT_LIMIT = 50
MAX_TEXT = 200  # characters of a text filter; ids and refs are far shorter


@dataclass(frozen=True, slots=True)
class SearchPage:
    messages: list[MessageState]
    next_before_seq: int | None  # None: this was the last page

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": [message.to_dict() for message in self.messages],
            "next_before_seq": self.next_before_seq,
        }


def read_search(params: Mapping[str, str]) -> MessageSearch:
    """The search `params` ask for; `BadSearch` or `BadQuery` saying what is wrong."""
    unknown = sorted(set(params) - set(SEARCH_KEYS))
    if unknown:
        raise BadSearch(f"unknown query parameter(s): {', '.join(unknown)}")
    texts = {}
    for name in ("message_id", "correlation_id", "recipient", "provider", "source", "status"):
        value = params.get(name, "").strip()
        if len(value) > MAX_TEXT:
            raise BadSearch(f"{name} is longer than {MAX_TEXT} characters")
        if not value.isprintable():  # a NUL would fail in PostgreSQL as a 503, not a 400
            raise BadSearch(f"{name} must not contain control characters")
        texts[name] = value or None
    provider = texts["provider"]
    return MessageSearch(
        message_id=texts["message_id"],
        correlation_id=texts["correlation_id"],
        recipient=texts["recipient"],
        provider=ALIASES.get(provider, provider) if provider else None,
        source=texts["source"],
        status=texts["status"],
        since=iso_time("since", params.get("since") or None),
        until=iso_time("until", params.get("until") or None),
        before_seq=whole_number("before_seq", params.get("before_seq"), 0, 1) or None,
        limit=whole_number("limit", params.get("limit"), DEFAULT_LIMIT, 1, MAX_SEARCH_LIMIT),
    )


async def search_page(store: Store, query: MessageSearch) -> SearchPage:
    messages = await store.search_messages(query)
    full = len(messages) == query.limit
    return SearchPage(messages, messages[-1].last_seq if messages and full else None)


class SearchApi:
    def __init__(self, store: Store, access: Access) -> None:
        self.store = store
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/v1/messages", self.access.guard(self.search), methods=["GET"])]

    async def search(self, request: Request) -> Response:
        try:
            page = await search_page(self.store, read_search(request.query_params))
        except (BadSearch, BadQuery) as error:
            return error_response(400, "bad_request", str(error))
        except StoreUnavailable as error:
            return store_unavailable(request.method, request.url.path, error)
        return JSONResponse(page.to_dict())
