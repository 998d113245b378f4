"""A receipt that names no message is quarantined, never stored with `message_id: null`.

The real app under Uvicorn on loopback; the fix is the user's: name the parameter
in `dlr_params`, then `dlrhub quarantine reprocess` (the CLI, in a subprocess).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlrhub.config import Config, load_config
from tests.conftest import SOURCE_TOKEN, Running, write_config
from tests.processes import run_dlrhub

GATEWAY_TOKEN = "gateway-token-0123456789"


def gateway_source(dlr_params: str = "") -> str:
    return f"""
[[sources]]
name = "gw"
provider = "kannel"
token = "{GATEWAY_TOKEN}"
{dlr_params}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """360NRS sources and an SMS gateway source, all with the default `dlr_params`."""
    return load_config(write_config(tmp_path, extra=gateway_source()), env={})


async def quarantined(running: Running) -> list[dict[str, Any]]:
    answer = await running.admin.get("/v1/quarantine", params={"state": "pending"})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


async def stored(running: Running) -> list[dict[str, Any]]:
    answer = await running.admin.get("/v1/events")
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


async def reprocess_all(running: Running, config_path: Path, *, code: int = 0) -> str:
    result = await run_dlrhub(
        "quarantine",
        "reprocess",
        "--all",
        "--config",
        str(config_path),
        "--data-dir",
        str(running.config.data_dir),
        cwd=config_path.parent,
    )
    assert result.returncode == code, result.stdout + result.stderr
    return result.stdout


async def test_the_documents_own_receipt_is_quarantined_until_dlr_params_name_its_ref(
    running: Running, tmp_path: Path
) -> None:
    # providers/360nrs-api.txt l.301: the customer's own id travels as `customId`.
    url = f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&sender=NRSTEST&phone=34666555444&status=1"
    first = await running.client.get(f"{url}&customId=123456")
    other = await running.client.get(f"{url}&customId=123457")
    for answer in (first, other):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["duplicate"], body["event_ids"]) == ("quarantined", False, [])
    assert first.json()["quarantine_id"] != other.json()["quarantine_id"]
    assert await stored(running) == []  # not two events with message_id null

    entries = await quarantined(running)
    assert len(entries) == 2
    for entry in entries:
        assert entry["reason"].startswith("no_message_identity: ")
        assert "'customId'" in entry["reason"]  # what the receipt did have
    listing = await run_dlrhub(
        "quarantine", "list", "--data-dir", str(running.config.data_dir), cwd=tmp_path
    )
    assert listing.stdout.count("no_message_identity") == 2, listing.stdout

    unchanged = await reprocess_all(running, tmp_path / "dlrhub.toml", code=1)
    assert "0 reprocessed, 2 still failing" in unchanged
    fixed = write_config(
        tmp_path / "fixed",
        source_extra='dlr_params = { ref = "customId" }',
        extra=gateway_source(),
    )
    output = await reprocess_all(running, fixed)
    assert "2 reprocessed, 0 still failing" in output

    events = await stored(running)
    assert [(e["message_id"], e["correlation_id"], e["status"]) for e in events] == [
        ("123456", "123456", "delivered"),
        ("123457", "123457", "delivered"),
    ]
    assert await quarantined(running) == []
    state = await running.admin.get("/v1/messages/nrs360/123456")
    assert state.json()["message"]["status"] == "delivered"


async def test_gateway_dlrs_without_identity_are_acknowledged_and_quarantined(
    running: Running, tmp_path: Path
) -> None:
    kannel = (
        f"/hooks/gw/dlr?token={GATEWAY_TOKEN}&status=1&phone=%2B34600111222"
        "&msgid=%25F&pedido=order-1"
    )
    jasmin = "id=&level=2&message_status=DELIVRD&pedido=order-2"
    answers = [
        await running.client.get(kannel),
        await running.client.post(
            "/hooks/gw/dlr",
            params={"token": GATEWAY_TOKEN},
            content=jasmin,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]
    for answer in answers:
        assert (answer.status_code, answer.content) == (200, b"ACK/Jasmin")  # Jasmin stops
    reasons = [entry["reason"] for entry in await quarantined(running)]
    assert len(reasons) == 2
    assert all(reason.startswith("no_message_identity: ") for reason in reasons), reasons
    assert await stored(running) == []

    fixed = write_config(
        tmp_path / "fixed", extra=gateway_source('dlr_params = { ref = "pedido" }')
    )
    assert "2 reprocessed, 0 still failing" in await reprocess_all(running, fixed)
    events = await stored(running)
    assert sorted((e["message_id"], e["extra"]["format"]) for e in events) == [
        ("order-1", "kannel"),
        ("order-2", "jasmin"),
    ]


async def test_a_web_send_s_event_notification_without_id_is_stored(running: Running) -> None:
    # providers/360nrs-api.txt ~l.7982: "Si el mensaje se ha enviado por la web, no tendrá valor."
    answer = await running.client.post(
        "/hooks/nrs360/events",
        params={"token": SOURCE_TOKEN},
        content="id=&channel=sms&contactId=48213377&campaignId=912044&event=sent",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.json()["status"] == "stored", answer.text
    (event,) = await stored(running)
    assert event["message_id"] is None
    assert (event["extra"]["campaignId"], event["extra"]["contactId"]) == (912044, 48213377)
