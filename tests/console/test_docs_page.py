"""`/docs`: Swagger UI on this server's `/openapi.json`, every asset from the package,
under the console's Content-Security-Policy, and nothing fetched from elsewhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from dlrhub.config import Config
from dlrhub.console.headers import CONTENT_SECURITY_POLICY, security_headers
from tests.browser import DESKTOP, PHONE, chromium, watched_page
from tests.conftest import Running, run_app

STATIC = files("dlrhub.console").joinpath("static")
VENDOR = STATIC.joinpath("vendor/swagger-ui")
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}


@pytest.fixture
async def served(config: Config) -> AsyncIterator[Running]:
    async with run_app(config, ingest_worker=False) as running:
        yield running


def assets_of(html: str) -> list[str]:
    """The script and style sheet paths the page loads, made absolute."""
    paths = re.findall(r'<(?:script src|link rel="stylesheet" href)="([^"]+)"', html)
    return ["/" + path for path in paths]


async def test_docs_answers_an_html_page_with_the_console_headers(served: Running) -> None:
    answer = await served.client.get("/docs")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in security_headers(cache_control="no-cache").items():
        assert answer.headers[name] == value
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    head = await served.client.head("/docs")
    assert head.status_code == 200
    assert head.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_the_page_has_no_inline_script_or_style_and_names_no_other_host(
    served: Running,
) -> None:
    html = (await served.client.get("/docs")).text
    assert re.findall(r"<script(?![^>]*\ssrc=)", html) == []
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html) == []
    assert re.findall(r"https?://|//[a-z]", html) == []
    docs_js = STATIC.joinpath("docs.js").read_text()
    assert re.findall(r"https?://", docs_js) == []
    assert 'url: "openapi.json"' in docs_js
    assert "validatorUrl: null" in docs_js


async def test_each_asset_loads_from_the_package_with_its_type_and_headers(
    served: Running,
) -> None:
    assets = assets_of((await served.client.get("/docs")).text)
    assert assets == [
        "/console/static/vendor/swagger-ui/swagger-ui.css",
        "/console/static/docs.css",
        "/console/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/console/static/docs.js",
    ]
    for path in assets:
        answer = await served.client.get(path)
        assert answer.status_code == 200, path
        media_type = answer.headers["content-type"].split(";")[0]
        assert media_type == ASSET_TYPES[Path(path).suffix], path
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-cache"
        packaged = STATIC.joinpath(path.removeprefix("/console/static/")).read_bytes()
        assert answer.content == packaged
        again = await served.client.get(path, headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304, path


async def test_a_missing_asset_or_a_path_outside_the_folder_is_404(served: Running) -> None:
    for path in ("/console/static/nothing.js", "/console/static/../__init__.py"):
        answer = await served.client.get(path)
        assert answer.status_code == 404, path
    escaped = await served.client.get("/console/static/%2e%2e/headers.py")
    assert escaped.status_code == 404


def test_swagger_ui_is_vendored_with_its_version_and_licenses() -> None:
    version = VENDOR.joinpath("VERSION").read_text().strip()
    assert re.fullmatch(r"5\.\d+\.\d+", version)
    assert f"swagger-ui-dist` {version}" in VENDOR.joinpath("README.md").read_text()
    assert "Apache License" in VENDOR.joinpath("LICENSE").read_text()
    assert VENDOR.joinpath("swagger-ui-bundle.js.LICENSE.txt").is_file()


async def test_chromium_renders_the_reference_offline_under_the_policy(
    served: Running, tmp_path: Path
) -> None:
    document = (await served.client.get("/openapi.json")).json()
    async with chromium() as browser:
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            async with watched_page(browser, viewport) as watch:
                page = watch.page
                await page.goto(f"{served.base_url}/docs")
                await page.locator(".opblock").first.wait_for(timeout=15_000)
                title = page.locator(".info .title")
                assert document["info"]["title"] in await title.inner_text()
                operations = await page.locator(".opblock").count()
                assert operations == sum(
                    1
                    for item in document["paths"].values()
                    for method in item
                    if method in {"get", "post", "put", "patch", "delete"}
                )
                await page.screenshot(path=tmp_path / f"docs-{name}.png")
                assert await watch.problems() == []
                assert any(url.endswith("/openapi.json") for url in watch.requested)


async def test_try_it_out_calls_this_server_within_the_policy(served: Running) -> None:
    async with chromium() as browser, watched_page(browser, DESKTOP) as watch:
        page = watch.page
        await page.goto(f"{served.base_url}/docs")
        healthz = page.locator(".opblock", has=page.locator('[data-path="/healthz"]'))
        await healthz.locator(".opblock-summary-control").click(timeout=15_000)
        await healthz.locator(".try-out__btn").click()
        await healthz.locator(".execute").click()
        status = healthz.locator(".live-responses-table .response .response-col_status")
        await status.wait_for(timeout=10_000)
        assert (await status.inner_text()).strip() == "200"
        # An operation with JSON examples: they are highlighted without inline style.
        events = page.locator(".opblock", has=page.locator('[data-path="/v1/events"]'))
        await events.locator(".opblock-summary-control").click()
        await events.locator(".microlight").first.wait_for(timeout=10_000)
        assert await watch.problems() == []
        assert any(url.endswith("/healthz") for url in watch.requested)


async def test_docs_needs_no_token(served: Running) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        assert (await anonymous.get("/docs")).status_code == 200
        assert (await anonymous.get("/console/static/docs.js")).status_code == 200
