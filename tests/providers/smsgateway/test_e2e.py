"""The real app under Uvicorn on loopback, called back the way Kannel and Jasmin call.

The fake gateway (`dlrhub.providers.smsgateway.fake`) plays both: it fills in
Kannel's escapes or Jasmin's fields and retries as they do.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from dlrhub.commands.receiver import describe_endpoints
from dlrhub.config import Config, load_config
from dlrhub.providers import PROVIDERS
from dlrhub.providers.smsgateway.fake import FakeSmsGateway
from tests.conftest import Running, write_config
from tests.serving import serve_app

GATEWAY_TOKEN = "gateway-token-0123456789"
GATEWAY_SOURCE = f"""
[[sources]]
name = "gw"
provider = "kannel"
token = "{GATEWAY_TOKEN}"
timezone = "Europe/Madrid"
[sources.dlr_params]
ref = "customId"
"""
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ACK = b"ACK/Jasmin"
RECEIPT = (
    "id:7300a1f3 sub:001 dlvrd:001 submit date:2412021015 done date:2412021016 "
    "stat:DELIVRD err:000 text:Su cita es el lunes"
)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The shared config's two 360NRS sources, and an SMS gateway source `gw`."""
    return load_config(write_config(tmp_path, extra=GATEWAY_SOURCE), env={})


def kannel_query(status: str, **more: str) -> str:
    params = {
        "token": GATEWAY_TOKEN,
        "status": status,
        "phone": "+34600111222",
        "sender": "CLINICASUR",
        "msgid": "7300a1f3",
        "smsc_id": "movistar-es",
        "reply": RECEIPT,
        "ts": "1733134576",
        "customId": "order-77",
        **more,
    }
    return "&".join(f"{name}={quote_plus(value)}" for name, value in params.items())


async def gateway_events(running: Running) -> list[dict[str, Any]]:
    answer = await running.admin.get("/v1/events", params={"source": "gw"})
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def assert_acknowledged(answer: httpx.Response) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.content == ACK
    assert answer.headers["content-type"].startswith("text/plain")


async def test_kannel_get_and_post_are_stored_and_answered_ack_jasmin(running: Running) -> None:
    ack = kannel_query("8", reply="ACK/")
    assert_acknowledged(await running.client.get(f"/hooks/gw/dlr?{ack}"))
    body = kannel_query("1").replace(f"token={GATEWAY_TOKEN}&", "")
    posted = await running.client.post(
        "/hooks/gw/dlr", params={"token": GATEWAY_TOKEN}, content=body, headers=FORM
    )
    assert_acknowledged(posted)

    sent, delivered = await gateway_events(running)
    assert (sent["status"], delivered["status"]) == ("sent", "delivered")
    assert delivered["provider"] == "smsgateway"
    assert delivered["message_id"] == "7300a1f3"
    assert delivered["correlation_id"] == "order-77"
    assert delivered["recipient"] == "+34600111222"
    assert delivered["extra"]["receipt"]["stat"] == "DELIVRD"
    assert "token" not in delivered["extra"]["params"]
    state = (await running.admin.get("/v1/messages/kannel/7300a1f3")).json()
    assert state["message"]["status"] == "delivered"


async def test_a_retried_dlr_is_acknowledged_and_stored_once(running: Running) -> None:
    url = f"/hooks/gw/dlr?{kannel_query('1')}"
    first = await running.client.get(url)
    retry = await running.client.get(url)
    assert_acknowledged(first)
    assert_acknowledged(retry)
    assert len(await gateway_events(running)) == 1
    metrics = (await running.client.get("/metrics")).text
    assert 'dlrhub_callbacks_total{kind="dlr",outcome="duplicate",source="gw"} 1.0' in metrics


async def test_bad_or_missing_token_is_401_and_stores_nothing(running: Running) -> None:
    bad = await running.client.get(f"/hooks/gw/dlr?{kannel_query('1', token='nope')}")
    missing = await running.client.post(
        "/hooks/gw/dlr", content="id=a&level=1&message_status=ESME_ROK", headers=FORM
    )
    for answer in (bad, missing):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    credentials = base64.b64encode(f"jasmin:{GATEWAY_TOKEN}".encode()).decode()
    basic = await running.client.post(
        "/hooks/gw/dlr",
        content="id=a&level=1&message_status=ESME_ROK",
        headers={**FORM, "Authorization": f"Basic {credentials}"},
    )
    assert_acknowledged(basic)
    assert [event["message_id"] for event in await gateway_events(running)] == ["a"]


async def test_junk_is_quarantined_and_still_acknowledged(running: Running) -> None:
    junk = await running.client.get(
        f"/hooks/gw/dlr?token={GATEWAY_TOKEN}&status=%d&phone=%P&customId=order-9"
    )
    assert_acknowledged(junk)
    assert await gateway_events(running) == []
    (entry,) = (await running.admin.get("/v1/quarantine")).json()["entries"]
    assert "an escape nobody filled in" in entry["reason"]

    wrong_type = await running.client.post(
        "/hooks/gw/dlr", params={"token": GATEWAY_TOKEN}, json={"status": 1}
    )
    assert wrong_type.status_code == 415


async def test_the_fakes_jasmin_dlrs_are_delivered_end_to_end(running: Running) -> None:
    fake = FakeSmsGateway()
    async with serve_app(fake.app) as gateway, httpx.AsyncClient(base_url=gateway) as client:
        dlr_url = f"{running.base_url}/hooks/gw/dlr?token={GATEWAY_TOKEN}&customId=order-1"
        sent = await client.post(
            "/send",
            data={
                "username": fake.username,
                "password": fake.password,
                "to": "34600111222",
                "from": "CLINICASUR",
                "content": "Su cita es el lunes",
                "dlr": "yes",
                "dlr-url": dlr_url,
                "dlr-level": "3",
                "dlr-method": "POST",
            },
        )
    assert sent.status_code == 200
    message_id = sent.text.removeprefix('Success "').removesuffix('"')
    assert await fake.report(message_id, "DELIVRD")

    attempts = fake.attempts_for(message_id)
    assert [(a.method, a.status, a.answer) for a in attempts] == [("POST", 200, "ACK/Jasmin")] * 2
    level_1, level_2 = await gateway_events(running)
    assert (level_1["status"], level_1["extra"]["level"]) == ("sent", 1)
    assert (level_2["status"], level_2["extra"]["level"]) == ("delivered", 2)
    assert level_2["correlation_id"] == "order-1"
    assert level_2["extra"]["receipt"]["id"] == fake.messages[message_id].smsc_message_id
    state = (await running.admin.get(f"/v1/messages/jasmin/{message_id}")).json()
    assert state["message"]["status"] == "delivered"


async def test_the_fakes_kannel_dlrs_by_get_and_by_post(running: Running) -> None:
    fake = FakeSmsGateway()
    spec = PROVIDERS["smsgateway"].source
    assert spec is not None
    gateway_source = running.config.sources[2]
    (_, template), _ = spec.urls(
        f"{running.base_url}/hooks/gw", GATEWAY_TOKEN, gateway_source.options
    )
    by_get = fake.submit("kannel", to="+34600111222", dlr_url=template.replace("<your-ref>", "g1"))
    by_post = fake.submit("kannel", to="+34600111223", dlr_url=template.replace("<your-ref>", "p1"))
    assert await fake.report(by_get, "EXPIRED", err="027")
    assert await fake.report(by_post, "DELIVRD", post=True)
    assert [a.method for a in fake.attempts] == ["GET", "GET", "POST", "POST"]
    assert {a.answer for a in fake.attempts} == {"ACK/Jasmin"}

    events = await gateway_events(running)
    assert [(e["correlation_id"], e["provider_status"], e["status"]) for e in events] == [
        ("g1", "8", "sent"),
        ("g1", "2", "expired"),
        ("p1", "8", "sent"),
        ("p1", "1", "delivered"),
    ]
    assert events[1]["extra"]["error_code"] == "027"
    assert events[3]["recipient"] == "+34600111223"
    assert "unsubstituted" not in events[3]["extra"]


async def test_a_fake_jasmin_retries_until_acknowledged_then_gives_up(running: Running) -> None:
    fake = FakeSmsGateway(max_retries=2, retry_delay=0.01)
    message_id = fake.submit(
        "jasmin",
        to="34600111222",
        dlr_url=f"{running.base_url}/hooks/gw/dlr?token=wrong-token-0123456789",
        dlr_level=1,
    )
    assert not await fake.report(message_id)
    assert [a.status for a in fake.attempts] == [401, 401, 401]
    assert await gateway_events(running) == []

    refused = fake.submit(
        "jasmin",
        to="34600111222",
        dlr_url=f"{running.base_url}/hooks/gw/dlr?token={GATEWAY_TOKEN}",
        dlr_level=1,
        method="GET",
    )
    assert await fake.refuse(refused, "ESME_RINVDSTADR")
    (event,) = await gateway_events(running)
    assert (event["message_id"], event["status"]) == (refused, "rejected")


def test_check_config_of_a_gateway_source_with_dlr_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dlrhub.cli import main as cli_main

    good = tmp_path / "good.toml"
    good.write_text(
        f"""
[[sources]]
name = "gw"
provider = "jasmin"
token = "{GATEWAY_TOKEN}"
status_map = {{ ESME_RTHROTTLED = "rejected" }}
[sources.dlr_params]
status = "estado"
ref = "customId"
smsc_reply = "respuesta"
internal_id = "kid"
""",
        encoding="utf-8",
    )
    assert cli_main(["check-config", "--config", str(good)]) == 0
    assert "configuration is valid" in capsys.readouterr().out
    (source,) = load_config(good, env={}).sources
    assert source.provider == "smsgateway"
    assert source.options.dlr_params["status"] == "estado"
    assert source.options.dlr_params["timestamp"] == "ts"
    printed = describe_endpoints(load_config(good, env={}), [])
    assert "&estado=%d&phone=%P" in printed
    assert "&respuesta=%A&ts=%T&customId=<your-ref>" in printed

    bad = tmp_path / "bad.toml"
    bad.write_text(
        good.read_text(encoding="utf-8").replace('internal_id = "kid"', 'kannel_id = "kid"'),
        encoding="utf-8",
    )
    assert cli_main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dlrhub: configuration error: sources[0].dlr_params")
    assert "kannel_id" in err
