"""The poller under `/v1`: tracked messages, the pollable accounts, ending an auth pause.

`GET /v1/tracking` lists tracked rows (filters, paged by id; routed by `outbound_api.py`,
which owns the path's POST); `GET /v1/poller/accounts`
is what `dlrhub poll status` prints, per pollable account, with its rate, concurrency
and the rows a poller holds right now; `POST /v1/poller/accounts/{name}/resume` is
`dlrhub poll resume`. The console's Poller page (dlrhub/console/poller.py) reads the
same `PollerView`, so page and API cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlrhub.event import Status
from dlrhub.outbound.account import AccountConfig
from dlrhub.outbound.poller import Clock, utc_now
from dlrhub.outbound.settings import OutboundConfig
from dlrhub.receiver.auth import Access, Endpoint
from dlrhub.receiver.errors import answering, error_response
from dlrhub.receiver.query_api import MAX_LIMIT, BadQuery, enum_value, whole_number
from dlrhub.store.tracking import (
    STOP_REASONS,
    AccountBadAnswers,
    AccountPause,
    AccountSummary,
    TrackedMessage,
    TrackingFilter,
    TrackingStore,
)

TRACKING_PARAMS = ("account", "state", "stopped_reason", "status", "after_id", "limit")


@dataclass(frozen=True, slots=True)
class AccountState:
    """One pollable account as the poller sees it now."""

    config: AccountConfig
    summary: AccountSummary
    pause: AccountPause | None
    bad_answers: AccountBadAnswers | None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.config.name,
            "provider": self.config.provider,
            "rate_limit": self.config.rate_limit,
            "concurrency": self.config.concurrency,
            "tracked": self.summary.polling,
            "due": self.summary.due,
            "in_flight": self.summary.in_flight,
            "stopped": dict(sorted(self.summary.stopped.items())),
            "paused": (
                {"reason": self.pause.reason, "until": self.pause.to_dict()["paused_until"]}
                if self.pause
                else None
            ),
            "bad_answers": self.bad_answers.to_dict() if self.bad_answers else None,
        }


@dataclass(frozen=True, slots=True)
class TrackedPage:
    messages: list[TrackedMessage]
    next_after_id: int

    def to_dict(self) -> dict[str, object]:
        return {
            "messages": [message.to_dict() for message in self.messages],
            "next_after_id": self.next_after_id,
        }


class UnknownAccount(LookupError):
    pass


def tracking_filter(params: Mapping[str, str]) -> TrackingFilter:
    """`GET /v1/tracking`'s query (and the console list's), strictly: else `BadQuery`."""
    unknown = sorted(set(params) - set(TRACKING_PARAMS))
    if unknown:
        raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    state = params.get("state") or None
    if state not in (None, "active", "stopped"):
        raise BadQuery("state must be 'active' or 'stopped'")
    reason = params.get("stopped_reason") or None
    if reason is not None and reason not in STOP_REASONS:
        raise BadQuery(f"stopped_reason must be one of {', '.join(STOP_REASONS)}")
    if reason is not None and state == "active":
        raise BadQuery("an active message has no stopped_reason")
    return TrackingFilter(
        account=params.get("account") or None,
        state=state,  # type: ignore[arg-type]
        stopped_reason=reason,
        status=enum_value(Status, "status", params.get("status")),
        after_id=whole_number("after_id", params.get("after_id"), 0, 0),
        limit=whole_number("limit", params.get("limit"), 100, 1, MAX_LIMIT),
    )


class PollerView:
    """What the poller's API and page show, read from the tracking store."""

    def __init__(
        self, outbound: OutboundConfig, tracking: TrackingStore, now: Clock = utc_now
    ) -> None:
        self.outbound = outbound
        self.tracking = tracking
        self.now = now

    @property
    def pollable(self) -> list[AccountConfig]:
        return [account for account in self.outbound.accounts if account.pollable]

    async def accounts(self) -> list[AccountState]:
        """Every pollable account, in configuration order; a pause only while it lasts."""
        now = self.now()
        summaries = {summary.account: summary for summary in await self.tracking.summaries(now)}
        pauses = {p.account: p for p in await self.tracking.pauses() if p.paused_until > now}
        bad = {b.account: b for b in await self.tracking.bad_answers()}
        return [
            AccountState(
                account,
                summaries.get(account.name, AccountSummary(account.name)),
                pauses.get(account.name),
                bad.get(account.name),
            )
            for account in self.pollable
        ]

    async def tracked(self, query: TrackingFilter) -> TrackedPage:
        messages = await self.tracking.tracked(query)
        return TrackedPage(messages, messages[-1].id if messages else query.after_id)

    async def resume(self, name: str) -> bool:
        """End the account's auth pause; whether it was paused. `UnknownAccount` if it is
        not a configured account."""
        if self.outbound.account(name) is None:
            raise UnknownAccount(name)
        return await self.tracking.resume(name)


class PollerApi:
    def __init__(self, view: PollerView, access: Access) -> None:
        self.view = view
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/v1/poller/accounts", self._guard(self.list_accounts), methods=["GET"]),
            Route(
                "/v1/poller/accounts/{name}/resume",
                self._guard(self.resume),
                methods=["POST"],
            ),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        return self.access.guard(answering(endpoint, bad=(BadQuery,)))

    async def list_accounts(self, request: Request) -> Response:
        if request.query_params:
            raise BadQuery("this route takes no query parameters")
        states = await self.view.accounts()
        return JSONResponse({"accounts": [state.to_dict() for state in states]})

    async def resume(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            was_paused = await self.view.resume(name)
        except UnknownAccount:
            known = ", ".join(a.name for a in self.view.outbound.accounts) or "none configured"
            return error_response(404, "unknown_account", f"no account named {name!r} ({known})")
        detail = (
            f"account {name} resumed; the poller asks again on its next pass"
            if was_paused
            else f"account {name} was not paused"
        )
        return JSONResponse({"account": name, "was_paused": was_paused, "detail": detail})
