"""Outbound API: `POST /v1/messages` sends through an account, `POST /v1/tracking` tracks.

Both are changes: they need the admin token (`dlrhub/receiver/auth.py`). `GET
/v1/tracking` lists what is tracked (`PollerView`, dlrhub/receiver/tracking_api.py:
one route per path, so that its 405s name both methods). The API is
also a `Service`: it opens the tracking tables when the app starts and closes its provider
clients when it stops.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.event import parse_time
from dlrhub.outbound.errors import ProviderAuthError, ProviderError, ProviderUnavailable
from dlrhub.outbound.sending import Outbound, SendRefused, TrackRequest
from dlrhub.receiver.auth import Access, Endpoint
from dlrhub.receiver.errors import error_response, store_unavailable
from dlrhub.receiver.query_api import BadQuery
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.receiver.tracking_api import PollerView, tracking_filter
from dlrhub.store import Store, StoreUnavailable
from dlrhub.store.tracking_sql import open_tracking

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
MAX_TRACKED = 10_000


class BadBody(ValueError):
    pass


class OutboundApi:
    def __init__(self, config: ReceiverSettings, store: Store, access: Access) -> None:
        self.config = config
        self.store = store
        self.access = access
        self.tracking = open_tracking(config.store, config.data_dir)
        self.outbound = Outbound(config, store, self.tracking)
        self.poller = PollerView(config.outbound, self.tracking, self.outbound.now)
        self._open = False

    async def start(self) -> None:
        await self.tracking.open()
        self._open = True

    async def stop(self) -> None:
        await self.outbound.aclose()
        await self.tracking.close()
        self._open = False

    async def readiness(self) -> dict[str, object]:
        """What `/readyz` shows of outbound: accounts paused after an authentication error."""
        if not self._open or not self.config.outbound.accounts:
            return {}
        now = self.outbound.now()
        pauses = [
            pause.to_dict() for pause in await self.tracking.pauses() if pause.paused_until > now
        ]
        return {"paused_accounts": pauses}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self._guard(self.send), methods=["POST"]),
            Route("/v1/tracking", self._guard(self.tracking_route), methods=["GET", "POST"]),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        async def answered(request: Request) -> Response:
            try:
                return await endpoint(request)
            except (BadBody, BadQuery) as error:
                return error_response(400, "bad_request", str(error))
            except SendRefused as error:
                status = 404 if error.code == "unknown_account" else 400
                return error_response(status, error.code, str(error))
            except ProviderError as error:
                return _provider_failure(error)
            except StoreUnavailable as error:
                return store_unavailable(request.method, request.url.path, error)

        return self.access.guard(answered)

    async def send(self, request: Request) -> Response:
        body = await json_object(request)
        known_keys(body, {"account", "to", "text", "from", "refs", "channel", "texts", "options"})
        recipients = body.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        sent = await self.outbound.send(
            _text(body, "account", required=True) or "",
            _texts(recipients, "to"),
            _text(body, "text") or "",
            refs=_texts(body["refs"], "refs") if body.get("refs") is not None else None,
            sender=_text(body, "from"),
            channel=_text(body, "channel") or "sms",
            texts=_texts(body["texts"], "texts") if body.get("texts") is not None else None,
            options={
                str(key): str(value)
                for key, value in _object(body.get("options"), "options").items()
            },
        )
        return JSONResponse({"messages": [message.to_dict() for message in sent]})

    async def tracking_route(self, request: Request) -> Response:
        if request.method == "GET":
            page = await self.poller.tracked(tracking_filter(request.query_params))
            return JSONResponse(page.to_dict())
        return await self.track(request)

    async def track(self, request: Request) -> Response:
        body = await json_object(request)
        known_keys(body, {"account", "messages"})
        account = _text(body, "account", required=True) or ""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or len(messages) > MAX_TRACKED:
            raise BadBody(f"'messages' must be a list of 1 to {MAX_TRACKED} objects")
        items = []
        for index, item in enumerate(messages):
            item = _object(item, f"messages[{index}]")
            known_keys(item, {"message_id", "recipient", "ref", "channel", "sent_at", "sending_id"})
            sent_at = _text(item, "sent_at")
            try:
                moment = parse_time(sent_at) if sent_at else None
            except ValueError:
                raise BadBody(f"messages[{index}].sent_at is not an ISO 8601 time") from None
            items.append(
                TrackRequest(
                    message_id=_text(item, "message_id", required=True) or "",
                    recipient=_text(item, "recipient"),
                    ref=_text(item, "ref"),
                    channel=_text(item, "channel") or "sms",
                    sent_at=moment,
                    sending_id=_text(item, "sending_id"),
                )
            )
        added = await self.outbound.track(account, items)
        return JSONResponse({"tracked": added, "already_tracked": len(items) - added})


def _provider_failure(error: ProviderError) -> Response:
    """The answer to a failed provider call, with the provider's own words when it answered.

    A provider's refusal (`ProviderRejected`, `ProviderAuthError`, ...) carries its
    answer's text, scrubbed of the account's credentials: the caller needs it. A
    provider that could not be reached or kept failing (`ProviderUnavailable`) is
    described by our transport, whose text holds the base URL's host and port and
    the network error: that is logged, and the answer is a fixed sentence.
    """
    if isinstance(error, ProviderUnavailable):
        log.warning("outbound: %s", error)
        detail = (
            f"{error.provider} account {error.account!r}: the provider could not be reached"
            " or kept failing; the cause is logged"
        )
        status = 503
    else:
        if isinstance(error, ProviderAuthError):
            log.error("outbound: %s", error)
        detail, status = str(error), 502
    body = {"error": error.error, "detail": detail, "provider_code": error.code}
    return JSONResponse(body, status_code=status)


async def json_object(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadBody("send a JSON body with Content-Type: application/json")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadBody(f"the body is over {MAX_BODY} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:  # where, not the parser's own words
        raise BadBody(
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
    return _object(document, "the body")


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadBody(f"{name} must be a JSON object")
    return value


def known_keys(document: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise BadBody(f"unknown field(s): {', '.join(unknown)}")


def _text(document: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            raise BadBody(f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise BadBody(f"'{key}' must be a string")
    return value


def _texts(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadBody(f"'{key}' must be a list of strings")
    return value
