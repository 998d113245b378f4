"""The console's static files (scripts, style sheets, vendored Swagger UI) at `STATIC_PATH`.

Served from the installed package, wheel included (package data in pyproject.toml),
so nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from dlrhub.console.headers import WithHeaders, security_headers

STATIC_PATH = "/console/static"


def static_route() -> Mount:
    """The mount for everything under dlrhub/console/static/, with the console's headers."""
    files = StaticFiles(packages=[("dlrhub.console", "static")])
    return Mount(STATIC_PATH, WithHeaders(files, security_headers(cache_control="no-cache")))
