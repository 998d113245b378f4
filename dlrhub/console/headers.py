"""The security headers of every console answer: its HTML pages and their static assets.

Every script, style sheet and image the console uses ships in the package
(dlrhub/console/static/), so the policy allows this origin only: no inline
script or style, no plugins, no `<base>`, no framing (clickjacking), forms posted
back here only. `img-src data:` is for the icons Swagger UI's style sheet embeds.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


def security_headers(*, cache_control: str = "no-store") -> dict[str, str]:
    """Headers for a console answer. `cache_control`: "no-store" for pages that show
    data; "no-cache" for files that change only with dlrhub (revalidated by ETag, so an
    upgrade shows at once and an unchanged file costs a 304)."""
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": cache_control,
    }


class WithHeaders:
    """`app` (e.g. StaticFiles, which takes no headers) with `headers` on each answer."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
