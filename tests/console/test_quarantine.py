"""The Quarantine pages and the bulk routes they use: list, entry, reprocess, drop."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import APIResponse, Dialog, Page, expect

from dlrhub.app import DlrhubApp
from dlrhub.config import Config, parse_config
from dlrhub.event import RawCallback
from dlrhub.store import Quarantine, Store
from tests.console.conftest import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    check_page,
    console_document,
    sign_in,
)

SECRET = "source-token-that-must-never-show-0001"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    source = {"name": "nrs360", "provider": "360nrs", "token": SECRET}
    return parse_config(console_document(tmp_path, sources=[source]))


def dlr(query: str) -> RawCallback:
    """A 360NRS delivery receipt as the receiver stores it (its token already redacted)."""
    return RawCallback(
        source="nrs360",
        provider="nrs360",
        kind="dlr",
        method="GET",
        query=f"token=[REDACTED]&phone=34600111222&{query}",
        content_type="",
        body=b"",
        received_at=datetime.now(UTC),
    )


async def quarantine(app: DlrhubApp, query: str, reason: str) -> int:
    """A quarantine entry; a readable `query` makes one that reprocesses (as after a fix)."""
    store: Store = app.state.store
    result = await store.write(Quarantine(dlr(query), reason))
    assert result.quarantine_id is not None
    return result.quarantine_id


async def forced_change(page: Page, api: str, body: object) -> APIResponse:
    """The change a disabled button would make, sent with the page's session and CSRF."""
    csrf = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    return await page.request.post(api, data=body, headers={"X-CSRF-Token": csrf or ""})


async def accept_dialogs(page: Page) -> None:
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)


async def test_bulk_reprocess_and_drop_answer_per_id(base_url: str, console_app: DlrhubApp) -> None:
    good = await quarantine(console_app, "status=8&ref=r-1", "status parameter missing")
    bad = await quarantine(console_app, "estado=8&ref=r-2", "status parameter missing")
    async with httpx.AsyncClient(base_url=base_url, headers=ADMIN) as admin:
        answer = await admin.post("/v1/quarantine/reprocess", json={"ids": [good, str(bad), 999]})
        assert answer.status_code == 200
        results = answer.json()["results"]
        assert [(r["id"], r["status"]) for r in results] == [
            (good, "reprocessed"),
            (bad, "failed_again"),
            (999, "not_found"),
        ]
        assert len(results[0]["event_ids"]) == 1
        assert answer.json()["detail"] == "1 failed_again, 1 not_found, 1 reprocessed"
        dropped = await admin.post("/v1/quarantine/drop", json={"ids": [bad, bad, 999]})
        assert [(r["id"], r["status"]) for r in dropped.json()["results"]] == [
            (bad, "dropped"),
            (999, "not_found"),
        ]
        assert (await admin.get(f"/v1/quarantine/{bad}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": []},
        {"ids": "1"},
        {"ids": [1.5]},
        {"ids": [True]},
        {"ids": [-1]},
        {"ids": ["1x"]},
        {"ids": [""]},
        {"ids": [2**63]},
        {"ids": list(range(1001))},
        {"ids": [1], "all": True},
        [1],
    ],
)
async def test_bulk_routes_refuse_bad_bodies(base_url: str, body: object) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=ADMIN) as admin:
        for route in ("/v1/quarantine/reprocess", "/v1/quarantine/drop"):
            answer = await admin.post(route, json=body)
            assert answer.status_code == 400, (route, body, answer.text)
            assert answer.json()["error"] == "bad_request"


async def test_roles_on_the_bulk_routes_and_pages(base_url: str, console_app: DlrhubApp) -> None:
    entry = await quarantine(console_app, "estado=8&ref=r-3", "status parameter missing")
    async with httpx.AsyncClient(base_url=base_url) as nobody:
        assert (await nobody.post("/v1/quarantine/drop", json={"ids": [entry]})).status_code == 401
        page = await nobody.get("/console/quarantine", follow_redirects=False)
        assert page.status_code == 303 and "/console/login" in page.headers["location"]
    async with httpx.AsyncClient(base_url=base_url, headers=VIEWER) as viewer:
        for route in ("/v1/quarantine/drop", "/v1/quarantine/reprocess"):
            refused = await viewer.post(route, json={"ids": [entry]})
            assert refused.status_code == 403
        assert (await viewer.get(f"/v1/quarantine/{entry}")).status_code == 200
    async with httpx.AsyncClient(base_url=base_url) as session:
        await session.post("/console/login", data={"token": VIEWER_TOKEN})
        listing = await session.get("/console/quarantine")
        assert listing.status_code == 200 and f"/console/quarantine/{entry}" in listing.text
        assert "status parameter missing" in listing.text
        shown = await session.get(f"/console/quarantine/{entry}")
        assert shown.status_code == 200 and "estado=8" in shown.text
        assert SECRET not in shown.text and "token=[REDACTED]" in shown.text
        for path, status in [
            ("/console/quarantine?state=nope", 400),
            ("/console/quarantine?after_id=-1", 400),
            ("/console/quarantine?color=red", 400),
            ("/console/quarantine/abc", 400),
            ("/console/quarantine/99999", 404),
        ]:
            answer = await session.get(path)
            assert answer.status_code == status, path
            assert "<h1>" in answer.text  # a page saying why, not JSON
        assert (await session.get("/console/quarantine?state=reprocessed")).status_code == 200


async def test_admin_reprocesses_one_and_drops_the_selected(
    page: Page, console_app: DlrhubApp, tmp_path: Path
) -> None:
    await sign_in(page, ADMIN_TOKEN, "/console/quarantine")
    await page.get_by_text("Nothing in quarantine.").wait_for()
    await check_page(page, tmp_path / "screens", "quarantine-empty")

    fixed = await quarantine(console_app, "status=8&ref=r-10", "status parameter missing")
    doomed = [
        await quarantine(console_app, f"estado=8&ref=r-{n}", "status parameter missing")
        for n in (11, 12)
    ]
    kept = await quarantine(console_app, "estado=8&ref=r-13", "status parameter missing")
    await page.goto(f"/console/quarantine/{fixed}")
    await page.get_by_role("heading", name=f"Quarantine entry #{fixed}").wait_for()
    assert SECRET not in await page.content()
    await check_page(page, tmp_path / "screens", "quarantine-entry")
    await page.get_by_role("button", name="Reprocess").click()
    await page.locator(".state-reprocessed").wait_for()
    assert (await console_app.state.store.quarantine_entry(fixed)).state == "reprocessed"

    await page.goto("/console/quarantine")
    await check_page(page, tmp_path / "screens", "quarantine-list")
    for entry in doomed:
        await page.get_by_label(f"Select entry {entry}").check()
    await accept_dialogs(page)
    await page.get_by_role("button", name="Drop selected").click()
    await page.get_by_text("2 dropped").wait_for()
    await expect(page.locator(f"a[href='/console/quarantine/{doomed[0]}']")).to_have_count(0)
    await expect(page.locator(f"a[href='/console/quarantine/{kept}']")).to_have_count(1)
    for entry in doomed:
        assert await console_app.state.store.quarantine_entry(entry) is None

    await page.get_by_label("Show").select_option("reprocessed")
    await page.get_by_role("button", name="Filter").click()
    await page.locator(f"a[href='/console/quarantine/{fixed}']").wait_for()


async def test_a_viewer_sees_disabled_buttons_and_the_api_refuses(
    page: Page, console_app: DlrhubApp, tmp_path: Path
) -> None:
    entry = await quarantine(console_app, "estado=8&ref=r-20", "status parameter missing")
    await sign_in(page, VIEWER_TOKEN, "/console/quarantine")
    for name in ("Reprocess selected", "Drop selected"):
        assert await page.get_by_role("button", name=name).is_disabled()
    await check_page(page, tmp_path / "screens", "quarantine-viewer")
    await page.goto(f"/console/quarantine/{entry}")
    for name in ("Reprocess", "Drop"):
        assert await page.get_by_role("button", name=name, exact=True).is_disabled()
    forced = await forced_change(page, "/v1/quarantine/drop", {"ids": [entry]})
    assert forced.status == 403 and (await forced.json())["error"] == "forbidden"
    assert await console_app.state.store.quarantine_entry(entry) is not None
