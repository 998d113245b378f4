"""The Messages search, one message's story (state, timeline, what each event came from,
sink deliveries), and the form that opens a message by provider and id.

The message page renders `message_story`, the data `GET /v1/messages/{provider}/{id}`
answers, so both always show the same thing; what the store kept of a callback is
already redacted (dlrhub/redact.py), and the page shows nothing else of it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from dlrhub.console.headers import security_headers
from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import STORE_UNREADABLE, render
from dlrhub.event import Status
from dlrhub.providers import ALIASES, PROVIDERS
from dlrhub.receiver.auth import Principal
from dlrhub.receiver.query_api import BadQuery, message_story
from dlrhub.receiver.search_api import SEARCH_KEYS, read_search, search_page
from dlrhub.store import BadSearch, Store, StoreUnavailable
from dlrhub.store.sink_state import SinkStateStore, SinkStateUnavailable


class MessagePages:
    def __init__(self, site: ConsoleSite, store: Store, sink_state: SinkStateStore) -> None:
        self.site = site
        self.store = store
        self.sink_state = sink_state

    def routes(self) -> list[Route]:
        return [
            Route("/console/messages", self.site.page(self.messages), methods=["GET"]),
            Route("/console/messages/open", self.site.page(self.open), methods=["GET"]),
            Route(
                "/console/messages/{provider}/{message_id:path}",
                self.site.page(self.message),
                methods=["GET"],
            ),
        ]

    async def messages(self, request: Request, principal: Principal) -> Response:
        """The search (`GET /v1/messages`'s, newest first) and the form that opens one."""
        params = request.query_params
        context: dict[str, Any] = {
            **self._form("", ""),
            "search": {name: params.get(name, "") for name in SEARCH_KEYS},
            "statuses": [status.value for status in Status],
            "page": None,
            "older": None,
        }
        try:
            query = read_search(params)
            page = await search_page(self.store, query)
        except (BadSearch, BadQuery) as error:
            context["error"] = str(error)
            return render(
                request, "messages.html", context, principal, section="messages", status_code=400
            )
        except StoreUnavailable:
            context["error"] = STORE_UNREADABLE
            return render(
                request, "messages.html", context, principal, section="messages", status_code=503
            )
        context["page"] = page
        if page.next_before_seq is not None:
            kept = {k: v for k, v in params.items() if v and k != "before_seq"}
            context["older"] = "?" + urlencode({**kept, "before_seq": page.next_before_seq})
        return render(request, "messages.html", context, principal, section="messages")

    async def open(self, request: Request, principal: Principal) -> Response:
        """The open form: given a provider and an id, the message's page."""
        provider = request.query_params.get("provider", "").strip()
        message_id = request.query_params.get("message_id", "").strip()
        if provider and message_id:
            target = f"/console/messages/{quote(provider, safe='')}/{quote(message_id, safe='')}"
            return RedirectResponse(target, 303, security_headers())
        return RedirectResponse("/console/messages", 303, security_headers())

    async def message(self, request: Request, principal: Principal) -> Response:
        provider = request.path_params["provider"]
        message_id = request.path_params["message_id"]
        context: dict[str, Any] = {**self._form(provider, message_id), "story": None}
        try:
            story = await message_story(self.store, self.sink_state, provider, message_id)
        except (StoreUnavailable, SinkStateUnavailable):
            context["error"] = STORE_UNREADABLE
            return render(
                request, "message.html", context, principal, section="messages", status_code=503
            )
        if story is None:
            return render(
                request, "message.html", context, principal, section="messages", status_code=404
            )
        context["story"] = story
        context["deliveries"] = story.get("deliveries") or []
        return render(request, "message.html", context, principal, section="messages")

    def _form(self, provider: str, message_id: str) -> dict[str, Any]:
        return {
            "providers": sorted(PROVIDERS),
            "provider": ALIASES.get(provider, provider),
            "message_id": message_id,
            "error": None,
        }
