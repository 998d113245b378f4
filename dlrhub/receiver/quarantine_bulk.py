"""Quarantine changes for many entries at once: `POST /v1/quarantine/reprocess` and `/drop`.

The body is `{"ids": [...]}` (1 to `MAX_IDS` entry ids: JSON integers, or strings
of digits as an HTML form's checkboxes give them); the answer says what happened
to each id, so a script and the console's "selected" buttons use one route
(the single-entry routes are in `query_api.py`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.receiver.auth import Access, Endpoint
from dlrhub.receiver.errors import answering
from dlrhub.receiver.outbound_api import BadBody, json_object, known_keys
from dlrhub.receiver.query_api import BadQuery, whole_number
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.reprocess import reprocess_entry
from dlrhub.store import Store

MAX_IDS = 1000
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


class QuarantineBulkApi:
    def __init__(self, config: ReceiverSettings, store: Store, access: Access) -> None:
        self.config = config
        self.store = store
        self.access = access

    def routes(self) -> list[Route]:
        # Every method routed here, so that `GET /v1/quarantine/drop` is a 405, not the
        # entry route's 400 for an entry id "drop".
        return [
            Route(path, _post_only(self._guard(endpoint)), methods=ALL_METHODS)
            for path, endpoint in (
                ("/v1/quarantine/reprocess", self.reprocess),
                ("/v1/quarantine/drop", self.drop),
            )
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        return self.access.guard(answering(endpoint, bad=(BadBody, BadQuery)))

    async def reprocess(self, request: Request) -> Response:
        results: list[dict[str, Any]] = []
        for entry_id in await _ids(request):
            entry = await self.store.quarantine_entry(entry_id)
            if entry is None:
                results.append({"id": entry_id, "status": "not_found", "event_ids": []})
                continue
            result = await reprocess_entry(self.store, self.config, entry)
            events = [event.id for event in result.events]
            results.append({"id": entry_id, "status": result.outcome, "event_ids": events})
        return JSONResponse({"results": results, "detail": _tally(results)})

    async def drop(self, request: Request) -> Response:
        ids = await _ids(request)
        dropped = set(await self.store.drop_quarantine(ids))
        results = [
            {"id": entry_id, "status": "dropped" if entry_id in dropped else "not_found"}
            for entry_id in ids
        ]
        return JSONResponse({"results": results, "detail": _tally(results)})


def _post_only(endpoint: Endpoint) -> Endpoint:
    async def posted(request: Request) -> Response:
        if request.method != "POST":
            raise HTTPException(405, headers={"Allow": "POST"})
        return await endpoint(request)

    return posted


async def _ids(request: Request) -> list[int]:
    """The body's `ids`, each once, in the order given."""
    body = await json_object(request)
    known_keys(body, {"ids"})
    given = body.get("ids")
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_IDS:
        raise BadBody(f"'ids' must be a list of 1 to {MAX_IDS} entry ids")
    ids: list[int] = []
    for item in given:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise BadBody("each of 'ids' must be an integer (or a string of digits)")
        entry_id = whole_number("each of 'ids'", str(item), -1, 0)
        if entry_id < 0:
            raise BadBody("each of 'ids' must be an integer (or a string of digits)")
        if entry_id not in ids:
            ids.append(entry_id)
    return ids


def _tally(results: list[dict[str, Any]]) -> str:
    """`2 reprocessed, 1 not_found`: what the console says after the change."""
    counts = Counter(str(result["status"]) for result in results)
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
