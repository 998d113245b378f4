"""The events page: the log newest first, filtered as `/v1/events`, following new events.

The page reads through `event_filter` (the `/v1/events` parser), so it takes the
same parameters and refuses the same mistakes (400 with the reason). Its table
carries the filters in `data-tail`: `static/console.js` then polls `/v1/events`
from the newest seq shown and puts new rows on top.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import STORE_UNREADABLE, render
from dlrhub.event import EventType, Status
from dlrhub.providers import PROVIDERS
from dlrhub.receiver.auth import Principal
from dlrhub.receiver.query_api import EVENT_FILTERS, BadQuery, event_filter
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.store import Store, StoreUnavailable

PAGE_SIZE = 100
PLACEHOLDER = "<the source's token>"


class EventsPages:
    def __init__(self, site: ConsoleSite, store: Store, settings: ReceiverSettings) -> None:
        self.site = site
        self.store = store
        self.settings = settings

    def routes(self) -> list[Route]:
        return [Route("/console/events", self.site.page(self.events), methods=["GET"])]

    async def events(self, request: Request, principal: Principal) -> Response:
        params = request.query_params
        chosen = {name: params.get(name, "") for name in EVENT_FILTERS}
        hooks, examples = self._hooks()
        context: dict[str, object] = {
            "chosen": chosen,
            "types": [kind.value for kind in EventType],
            "statuses": [status.value for status in Status],
            "providers": sorted(PROVIDERS),
            "hooks": hooks,
            "examples": examples,
            "filtered": any(chosen.values()),
            "events": [],
            "error": None,
            "tail": None,
            "newest_seq": 0,
            "older": None,
            "newer": None,
        }
        try:
            query = event_filter(params)
            if "limit" not in params:
                query = dataclasses.replace(query, limit=PAGE_SIZE)
            query = dataclasses.replace(query, descending=True)
            events = await self.store.events(query)
        except BadQuery as error:
            context["error"] = str(error)
            return render(
                request, "events.html", context, principal, section="events", status_code=400
            )
        except StoreUnavailable:
            context["error"] = STORE_UNREADABLE
            return render(
                request, "events.html", context, principal, section="events", status_code=503
            )
        filters = {name: value for name, value in chosen.items() if value}
        context.update(
            events=events,
            # Following only on the newest page: an older page stays as it is.
            tail=urlencode(filters) if not query.before_seq else None,
            newest_seq=max([query.after_seq, *(event.seq for event in events)]),
            older=(
                "?" + urlencode({**filters, "before_seq": events[-1].seq})
                if len(events) == query.limit
                else None
            ),
            newer="?" + urlencode(filters) if query.before_seq else None,
        )
        return render(request, "events.html", context, principal, section="events")

    def _hooks(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """Each configured source's callback URLs (as `dlrhub serve` prints them at start)
        and a curl example per source, for the empty page's instructions."""
        base = self.settings.server.base_url.rstrip("/")
        urls: list[dict[str, str]] = []
        examples: list[dict[str, str]] = []
        for source in self.settings.sources:
            spec = PROVIDERS[source.provider].source
            if spec is None:
                continue
            hook = f"{base}/hooks/{source.name}"
            for label, url in spec.urls(hook, PLACEHOLDER, source.options):
                urls.append({"source": source.name, "label": label, "url": url})
            route = spec.routes[0]
            if spec.secret_key == "token":  # noqa: S105 (a key's name): a query parameter
                examples.append(
                    {
                        "source": source.name,
                        "method": "POST" if "POST" in route.methods else route.methods[0],
                        "url": f"{hook}/{route.kind}?token={PLACEHOLDER}",
                        "content_type": route.content_type or "",
                        "docs": PROVIDERS[source.provider].docs,
                    }
                )
        return urls, examples
