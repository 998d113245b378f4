"""The Alerts page: open alerts first with value and threshold, resolved ones with their
history, the state filter and limit, the configured rules, the link into Analytics, the
empty states and the refusals. Alerts are opened and resolved by the real evaluator on
an injected clock (tests/alerts/conftest.py), on the store the console app then reads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Page, expect

from dlrhub.alerts.settings import read_alert
from dlrhub.app import create_app
from dlrhub.config import Config, parse_config
from dlrhub.console.alerts import analytics_link
from dlrhub.event import Status
from dlrhub.store.alerts_sql import AlertRecord
from tests.alerts.conftest import NOW, world
from tests.console.conftest import ADMIN_TOKEN, VIEWER_TOKEN, check_page, console_document, sign_in
from tests.console.nrs360 import signed_in
from tests.console.refused_pages import open_refused_page
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app

AT = NOW.replace(minute=5)  # in the hour the evaluator reads at NOW (10:30)
RULES: list[dict[str, Any]] = [
    {
        "name": "rate",
        "kind": "delivery_rate_below",
        "below": 0.9,
        "group_by": ["provider"],
        "source": ["nrs360", "twilio"],
        "min_messages": 5,
    },
    {"name": "quarantine", "kind": "quarantine_growing", "window": "10m"},
    {"name": "lagging", "kind": "sink_lagging", "minutes": 10},  # no sink: never opens
]


def alerting_config(tmp_path: Path, rules: list[dict[str, Any]], **extra: Any) -> Config:
    return parse_config(console_document(tmp_path, alerts=rules, **extra))


async def seed(config: Config) -> None:
    """At 10:30 `rate` opens for twilio (0 of 10 delivered) and for nrs360 (0 of 10); at
    10:31 nrs360's resolves (100 of 110) and `quarantine` opens (2 new entries); at 10:42
    `quarantine` resolves (no new entry for 10 minutes). twilio's stays open."""
    async with world(config) as w:
        evaluator = w.evaluator()
        await w.send(10, Status.FAILED, at=AT, provider="twilio")
        await w.send(10, Status.FAILED, at=AT, provider="nrs360")
        opened = (await evaluator.run_once()).transitions or []
        assert sorted(a.group for a in opened) == ["provider=nrs360", "provider=twilio"]
        await w.send(100, Status.DELIVERED, at=AT, provider="nrs360")
        await w.quarantine(2)
        w.now += timedelta(minutes=1)
        changed = (await evaluator.run_once()).transitions or []
        assert sorted((a.rule, a.state) for a in changed) == [
            ("quarantine", "open"),
            ("rate", "resolved"),
        ]
        w.now += timedelta(minutes=11)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert (resolved.rule, resolved.state) == ("quarantine", "resolved")


@pytest.fixture
def rules() -> list[dict[str, Any]]:
    return RULES


@pytest.fixture
async def console_config(tmp_path: Path, rules: list[dict[str, Any]]) -> Config:
    """The console tests' configuration with `rules`; with RULES, `seed`ed."""
    config = alerting_config(tmp_path, rules)
    if rules is RULES:
        await seed(config)
    return config


async def test_open_alerts_first_then_the_history_then_the_rules(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await sign_in(page, VIEWER_TOKEN, "/console/alerts")
    opened = page.get_by_role("region", name="Open")
    rows = opened.locator("tbody tr")
    await expect(rows).to_have_count(1)
    twilio = rows.first
    await expect(twilio.get_by_role("cell").nth(0)).to_have_text("rate")
    await expect(twilio.get_by_role("cell").nth(2)).to_have_text("provider=twilio")
    await expect(twilio.get_by_role("cell").nth(3)).to_contain_text("2026-11-20 10:30:00 UTC")
    await expect(twilio.get_by_role("cell").nth(4)).to_contain_text("0.0 %")
    await expect(twilio.get_by_role("cell").nth(5)).to_contain_text("90.0 %")
    await expect(twilio.get_by_role("cell").nth(5)).to_contain_text("opens under")
    await expect(twilio).to_contain_text("delivery rate 0.0% of 10 settled messages")

    history = page.get_by_role("region", name="Resolved").locator("tbody tr")
    await expect(history).to_have_count(2)  # the last resolved first
    quarantine, nrs360 = history.nth(0), history.nth(1)
    await expect(quarantine.get_by_role("cell").nth(0)).to_have_text("quarantine")
    await expect(quarantine.get_by_role("cell").nth(3)).to_contain_text("10:31:00 UTC")
    await expect(quarantine.get_by_role("cell").nth(4)).to_contain_text("10:42:00 UTC")
    await expect(quarantine.get_by_role("cell").nth(5)).to_have_text("11 min")
    await expect(quarantine.get_by_role("cell").nth(6)).to_contain_text("2 when opened")
    await expect(nrs360.get_by_role("cell").nth(2)).to_have_text("provider=nrs360")
    await expect(nrs360.get_by_role("cell").nth(5)).to_have_text("1 min")
    await expect(nrs360.get_by_role("cell").nth(6)).to_contain_text("90.9 % when resolved")
    await expect(quarantine.get_by_role("link")).to_have_count(0)  # not a delivery kind

    rules = page.get_by_role("region", name="Rules").locator("tbody tr")
    await expect(rules).to_have_count(3)
    await expect(rules.nth(0)).to_contain_text("90.0 %")
    await expect(rules.nth(0).get_by_role("cell").nth(3)).to_have_text("1 h")
    await expect(rules.nth(0)).to_contain_text("source = nrs360, twilio")
    await expect(rules.nth(0)).to_contain_text("one alert per provider")
    await expect(rules.nth(1)).to_contain_text("10 min")
    await expect(rules.nth(2)).to_contain_text("lagging")
    await check_page(page, tmp_path / "screens", "alerts")

    await nrs360.get_by_role("link", name="Analytics of rate provider=nrs360").click()
    await page.wait_for_url(
        "**/console/analytics?from=2026-11-20T10%3A00%3A00Z&to=2026-11-20T10%3A31%3A00Z"
        "&source=nrs360%2Ctwilio&provider=nrs360"
    )
    form = page.get_by_role("form", name="Delivery figures")
    await expect(
        form.get_by_text("Filters: provider = nrs360, source = nrs360,twilio")
    ).to_be_visible()
    messages = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Messages"))
    await expect(messages.get_by_role("cell").first).to_have_text("110")
    rate = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="Delivery rate (delivered / settled)")
    )
    await expect(rate.get_by_role("cell").first).to_have_text("90.9 %")

    await page.goto("/console")  # the Overview counts the open one and leads to it
    alerts_card = page.get_by_role("region", name="At a glance").locator(".card", has_text="Alerts")
    await expect(alerts_card.locator(".value")).to_have_text("1")
    await alerts_card.get_by_role("link", name="open alerts").click()
    await page.wait_for_url("**/console/alerts?state=open")
    await twilio.get_by_role("link", name="Analytics of rate provider=twilio").click()
    await page.wait_for_url("**/console/analytics?from=2026-11-20T10%3A00%3A00Z&source=**")
    assert "to=" not in page.url  # still open: up to now
    await expect(messages.get_by_role("cell").first).to_have_text("10")
    await expect(rate.get_by_role("cell").first).to_have_text("0.0 %")


async def test_the_state_filter_and_the_limit(page: Page, base_url: str, tmp_path: Path) -> None:
    await sign_in(page, VIEWER_TOKEN, "/console/alerts")
    form = page.get_by_role("form", name="Alerts shown")
    await form.get_by_label("State").select_option("resolved")
    await form.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/console/alerts?state=resolved&limit=100")
    await expect(page.get_by_role("region", name="Open")).to_have_count(0)
    await expect(page.get_by_role("region", name="Resolved").locator("tbody tr")).to_have_count(2)
    await expect(form.get_by_label("State")).to_have_value("resolved")

    await form.get_by_label("State").select_option("open")
    await form.get_by_role("button", name="Show").click()
    await page.wait_for_url("**/console/alerts?state=open&limit=100")
    await expect(page.get_by_role("region", name="Resolved")).to_have_count(0)
    await expect(page.get_by_role("region", name="Open").locator("tbody tr")).to_have_count(1)

    await page.goto("/console/alerts?state=all&limit=2")  # the open one, the last resolved
    await expect(page.get_by_role("region", name="Open").locator("tbody tr")).to_have_count(1)
    resolved = page.get_by_role("region", name="Resolved").locator("tbody tr")
    await expect(resolved).to_have_count(1)
    await expect(resolved.first).to_contain_text("quarantine")
    await expect(page.get_by_text('Showing the first 2; raise "At most"')).to_be_visible()

    for query, reason in [
        ("state=closed", "state must be open, resolved or all"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
    ]:
        assert await open_refused_page(page, f"/console/alerts?{query}") == 400
        await expect(page.get_by_role("alert")).to_contain_text(reason)
    await check_page(page, tmp_path / "screens", "alerts-refused")


@pytest.mark.parametrize("rules", [[]])
async def test_nothing_configured_and_nothing_open_say_so(
    page: Page, base_url: str, tmp_path: Path
) -> None:
    await sign_in(page, VIEWER_TOKEN, "/console/alerts")
    await expect(page.get_by_role("region", name="Open")).to_contain_text("No alert is open.")
    resolved = page.get_by_role("region", name="Resolved")
    await expect(resolved).to_contain_text("No alert has resolved yet.")
    rules = page.get_by_role("region", name="Rules")
    await expect(rules).to_contain_text("No alert rules configured.")
    await expect(rules).to_contain_text("docs/alerts.md")
    await expect(page.locator("table")).to_have_count(0)
    current = page.get_by_role("navigation", name="Sections").get_by_role("link", name="Alerts")
    await expect(current).to_have_attribute("aria-current", "page")
    await check_page(page, tmp_path / "screens", "alerts-empty")


async def test_a_rule_without_alerts_is_listed_while_nothing_is_open(tmp_path: Path) -> None:
    app = create_app(alerting_config(tmp_path, RULES[2:]))
    async with serve_app(app) as url, signed_in(url, VIEWER_TOKEN) as client:
        answer = await client.get("/console/alerts")
    assert answer.status_code == 200, answer.text
    page = " ".join(answer.text.split())
    assert "No alert is open." in page
    assert "<td>lagging</td><td>sink_lagging</td><td>10 min</td><td>—</td>" in page


async def test_an_alert_of_a_rule_no_longer_configured_says_so(tmp_path: Path) -> None:
    await seed(alerting_config(tmp_path, RULES))
    app = create_app(alerting_config(tmp_path, RULES[1:]))  # "rate" removed, not yet evaluated
    async with serve_app(app) as url, signed_in(url, VIEWER_TOKEN) as client:
        answer = await client.get("/console/alerts", params={"state": "open"})
    assert answer.status_code == 200, answer.text
    page = " ".join(answer.text.split())
    assert "provider=twilio" in page
    assert "This rule is no longer configured: it resolves at the next evaluation." in page
    assert "/console/analytics?" not in page  # its window and filters are not known any more


async def test_postgres_lists_them_and_a_store_that_does_not_answer_is_a_503(
    tmp_path: Path,
) -> None:
    async with fresh_schema() as schema:
        store = {"backend": "postgres", "dsn": POSTGRES_DSN, "schema": schema}
        config = alerting_config(tmp_path, RULES, store=store)
        await seed(config)
        app = create_app(config)
        async with serve_app(app) as url, signed_in(url, ADMIN_TOKEN) as client:
            answer = await client.get("/console/alerts", params={"state": "open"})
            assert answer.status_code == 200, answer.text
            assert "provider=twilio" in answer.text and "provider=nrs360" not in answer.text
            connection = await asyncpg.connect(POSTGRES_DSN)
            try:  # the alerts' table is gone: every read of it fails
                await connection.execute(f"ALTER TABLE {schema}.alerts RENAME TO alerts_away")
                answer = await client.get("/console/alerts")
            finally:
                await connection.close()
    assert answer.status_code == 503, answer.text
    assert "The store cannot be read right now" in answer.text
    assert "Rules" in answer.text  # the rules come from the configuration: still listed


async def test_signed_out_goes_to_the_sign_in_form(tmp_path: Path) -> None:
    app = create_app(alerting_config(tmp_path, []))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/console/alerts?state=open")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=%2Fconsole%2Falerts%3Fstate%3Dopen"


def test_the_analytics_link_leaves_out_a_value_the_store_could_not_tell() -> None:
    rule = read_alert(
        "alerts[0]",
        {
            "name": "slow",
            "kind": "ttr_p90_above",
            "seconds": 30,
            "window": "3h",
            "group_by": ["provider", "country"],
        },
    )
    alert = AlertRecord(
        id=1,
        rule="slow",
        kind="ttr_p90_above",
        group="provider=nrs360,country=unknown",
        state="resolved",
        opened_at=NOW,
        resolved_at=NOW + timedelta(minutes=5, microseconds=1),
        value=45.0,
        last_value=12.0,
        threshold=30.0,
        message="",
        resolve_message=None,
        notified=2,
    )
    assert analytics_link(rule, alert) == (  # 3 whole hours, the one it opened in last
        "/console/analytics?from=2026-11-20T08%3A00%3A00Z&to=2026-11-20T10%3A35%3A01Z"
        "&provider=nrs360"
    )
