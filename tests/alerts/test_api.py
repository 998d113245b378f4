"""`GET /v1/alerts` on a running app whose alert service evaluates every second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from dlrhub.app import create_app
from dlrhub.commands.alerts import alert_services
from dlrhub.config import parse_config
from dlrhub.event import Status
from tests.alerts.conftest import document, world
from tests.serving import serve_app
from tests.waiting import eventually_async

ADMIN_TOKEN = "admin-token-for-alert-tests-0001"
VIEWER_TOKEN = "viewer-token-for-alert-tests-0001"
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


async def test_the_service_opens_an_alert_that_the_api_lists(tmp_path: Path) -> None:
    rules = [
        {"name": "rate", "kind": "delivery_rate_below", "below": 0.9, "min_messages": 5},
        {"name": "quiet", "kind": "quarantine_growing"},
    ]
    doc = document(tmp_path, rules)
    doc |= {
        "admin_token": ADMIN_TOKEN,
        "viewer_tokens": [VIEWER_TOKEN],
        "alerting": {"interval": "1s"},
    }
    config = parse_config(doc)
    async with world(config) as w:
        await w.send(10, Status.FAILED, at=datetime.now(UTC))
    app = create_app(config, services=alert_services(config))
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:

        async def listed() -> list[dict[str, object]]:
            answer = await client.get("/v1/alerts", headers=VIEWER)
            assert answer.status_code == 200, answer.text
            alerts: list[dict[str, object]] = answer.json()["alerts"]
            return alerts

        async def opened() -> bool:
            return bool(await listed())

        await eventually_async(opened, 30, "the service to open the alert")
        (alert,) = await listed()
        assert (alert["rule"], alert["kind"], alert["state"]) == (
            "rate",
            "delivery_rate_below",
            "open",
        )
        assert alert["value"] == 0.0 and alert["threshold"] == 0.9
        assert alert["resolved_at"] is None
        open_only = await client.get("/v1/alerts?state=open&limit=1", headers=VIEWER)
        assert [a["id"] for a in open_only.json()["alerts"]] == [alert["id"]]
        resolved = await client.get("/v1/alerts?state=resolved", headers=VIEWER)
        assert resolved.json() == {"alerts": []}
        for query in ("state=closed", "limit=0", "limit=x", "since=1"):
            answer = await client.get(f"/v1/alerts?{query}", headers=VIEWER)
            assert answer.status_code == 400, query
            assert answer.json()["error"] == "bad_request"
        assert (await client.get("/v1/alerts")).status_code == 401
