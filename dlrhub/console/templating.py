"""Renders console pages: Jinja2 templates shipped in the package, escaped by default.

Every page gets the signed-in `principal` (its role decides whether change buttons
are live), the CSRF token the page's script sends with changes, the navigation,
and the security headers (`headers.py`). Times are shown in UTC by the server and
in the browser's local time by `static/console.js` (`<time datetime=...>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from dlrhub.console.headers import security_headers
from dlrhub.receiver.auth import Principal

# What a page says when the store does not answer (the cause goes to the log).
STORE_UNREADABLE = "The store cannot be read right now; try again in a few seconds."

NAVIGATION = (
    ("overview", "Overview", "/console"),
    ("messages", "Messages", "/console/messages"),
    ("analytics", "Analytics", "/console/analytics"),
    ("alerts", "Alerts", "/console/alerts"),
    ("events", "Events", "/console/events"),
    ("quarantine", "Quarantine", "/console/quarantine"),
    ("sinks", "Sinks", "/console/sinks"),
    ("poller", "Poller", "/console/poller"),
)

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("dlrhub.console", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def utc_text(moment: datetime | str | None) -> str:
    """`2026-12-02 11:04:05 UTC` (what the page shows before its script adds local time)."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return str(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_text(moment: datetime | str | None) -> str:
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


ENVIRONMENT.filters["utc"] = utc_text
ENVIRONMENT.filters["iso"] = iso_text


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    principal: Principal | None,
    *,
    section: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The page `template` with `context`, for `principal` (None on the sign-in page)."""
    page = ENVIRONMENT.get_template(template).render(
        {
            "principal": principal,
            "may_change": principal is not None and principal.may_change,
            "csrf": principal.csrf if principal is not None and principal.csrf else "",
            "navigation": NAVIGATION,
            "section": section,
            "path": request.url.path,
            **context,
        }
    )
    headers = security_headers()
    return HTMLResponse(page, status_code, headers)
