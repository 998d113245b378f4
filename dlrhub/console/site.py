"""The console's frame: sign in and out, and the guard every page uses.

A page is a coroutine `(request, principal) -> Response` wrapped by `page()`: a
request without a good session is sent to `/console/login?next=<path>` (303). The
pages' changes go through the `/v1` API from `static/console.js` (with the session
cookie and the page's CSRF token), so the console can do nothing a script with a
token cannot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from dlrhub.console.headers import security_headers
from dlrhub.console.sign_in_limit import SignInLimit
from dlrhub.console.templating import render
from dlrhub.providers.token import equal_secrets
from dlrhub.receiver.auth import Access, Principal
from dlrhub.receiver.sessions import Sessions

MAX_FORM_BYTES = 4096
Page = Callable[[Request, Principal], Awaitable[Response]]
Handler = Callable[[Request], Awaitable[Response]]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of ours, never another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


class ConsoleSite:
    def __init__(self, access: Access, sessions: Sessions) -> None:
        self.access = access
        self.sessions = sessions
        self.limit = SignInLimit()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console/login", self.login, methods=["GET", "POST"]),
            Route("/console/logout", self.logout, methods=["POST"]),
        ]

    def page(self, handler: Page) -> Handler:
        async def guarded(request: Request) -> Response:
            principal = await self.sessions.read(request)
            if principal is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(
                    f"/console/login?next={quote(target, safe='')}", 303, security_headers()
                )
            return await handler(request, principal)

        return guarded

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            if await self.sessions.read(request) is not None:
                return RedirectResponse(target, 303, security_headers())
            return render(request, "login.html", {"next": target, "error": None}, None)
        address = request.client.host if request.client else "unknown"
        wait = self.limit.retry_after(address)
        if wait > 0:
            context = {
                "next": target,
                "error": f"Too many failed sign-ins from your address; try again in {wait:.0f} s.",
            }
            refused = render(request, "login.html", context, None, status_code=429)
            refused.headers["Retry-After"] = str(max(1, round(wait)))
            return refused
        form = await _form(request)
        token = form.get("token", "").strip()
        role = self.access.tokens.role_of(token) if token else None
        if role is None:
            self.limit.failed(address)
            context = {"next": target, "error": "That token is not an admin or viewer token."}
            return render(request, "login.html", context, None, status_code=401)
        self.limit.succeeded(address)
        response = RedirectResponse(target, 303, security_headers())
        await self.sessions.sign_in(response, request, role, token)
        return response

    async def logout(self, request: Request) -> Response:
        principal = await self.sessions.read(request)
        form = await _form(request)
        if principal is not None and not equal_secrets(form.get("csrf", ""), principal.csrf or ""):
            return render(
                request,
                "error.html",
                {"title": "Not signed out", "detail": "The form's CSRF token was wrong."},
                principal,
                status_code=403,
            )
        response = RedirectResponse("/console/login", 303, security_headers())
        self.sessions.sign_out(response, request)
        return response


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form (sign-in, sign-out); anything else reads as empty."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items() if values}
