"""The Quarantine pages: callbacks that could not be normalized, why, and what to do.

The list shows pending entries (or reprocessed ones) with a checkbox each; its
"Reprocess selected" and "Drop selected" buttons call `POST /v1/quarantine/reprocess`
and `/drop` (dlrhub/receiver/quarantine_bulk.py). An entry's page shows the raw
callback as stored, which the receiver redacted before storing it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dlrhub.console.site import ConsoleSite
from dlrhub.console.templating import render
from dlrhub.receiver.auth import Principal
from dlrhub.receiver.query_api import BadQuery, whole_number
from dlrhub.store import Store

PAGE_SIZE = 50
STATES = ("pending", "reprocessed")


class QuarantinePages:
    def __init__(self, site: ConsoleSite, store: Store) -> None:
        self.site = site
        self.store = store

    def routes(self) -> list[Route]:
        return [
            Route("/console/quarantine", self.site.page(self.listing), methods=["GET"]),
            Route("/console/quarantine/{entry_id}", self.site.page(self.entry), methods=["GET"]),
        ]

    async def listing(self, request: Request, principal: Principal) -> Response:
        params = request.query_params
        state = params.get("state") or "pending"
        try:
            unknown = sorted(set(params) - {"state", "after_id"})
            if unknown:
                raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
            if state not in STATES:
                raise BadQuery("state must be 'pending' or 'reprocessed'")
            after_id = whole_number("after_id", params.get("after_id"), 0, 0)
        except BadQuery as error:
            context: dict[str, Any] = {
                "entries": [],
                "state": "pending",
                "error": str(error),
                "next_after": None,
            }
            return render(
                request,
                "quarantine.html",
                context,
                principal,
                section="quarantine",
                status_code=400,
            )
        entries = await self.store.quarantine_entries(
            state=state,  # type: ignore[arg-type]
            after_id=after_id,
            limit=PAGE_SIZE + 1,
        )
        more = len(entries) > PAGE_SIZE
        entries = entries[:PAGE_SIZE]
        context = {
            "entries": entries,
            "state": state,
            "error": None,
            "after_id": after_id,
            "next_after": entries[-1].id if more else None,
        }
        return render(request, "quarantine.html", context, principal, section="quarantine")

    async def entry(self, request: Request, principal: Principal) -> Response:
        try:
            entry_id = whole_number("entry_id", request.path_params["entry_id"], 0, 0)
        except BadQuery as error:
            return _problem(request, principal, "Not a quarantine entry", str(error), 400)
        entry = await self.store.quarantine_entry(entry_id)
        if entry is None:
            detail = f"There is no quarantine entry {entry_id}: it may have been dropped."
            return _problem(request, principal, "No such entry", detail, 404)
        context = {"entry": entry, "raw": entry.to_dict(with_raw=True)["raw"]}
        return render(request, "quarantine_entry.html", context, principal, section="quarantine")


def _problem(
    request: Request, principal: Principal, title: str, detail: str, status: int
) -> Response:
    context = {"title": title, "detail": detail}
    return render(
        request, "error.html", context, principal, section="quarantine", status_code=status
    )
