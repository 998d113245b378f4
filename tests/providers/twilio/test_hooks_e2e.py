"""The real app under Uvicorn on loopback, called back the way Twilio calls back.

Signatures are computed here (hmac, hashlib, base64), not with dlrhub's code.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from dlrhub.app import create_app
from dlrhub.commands.receiver import describe_endpoints
from dlrhub.config import load_config
from dlrhub.providers.twilio.fake import FakeTwilio
from tests.conftest import Running
from tests.providers.twilio.conftest import AUTH_TOKEN, PUBLIC_URL, write_twilio_config
from tests.serving import serve_app

FORM = "application/x-www-form-urlencoded"
PATH = "/hooks/twilio/status"
SID = "SM1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"


def status_form(status: str, sid: str = SID, **more: str) -> list[tuple[str, str]]:
    return [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", "+15558675310"),
        ("MessageSid", sid),
        ("AccountSid", "ACf1e2d3c4b5a69788796a5b4c3d2e1f00"),
        ("From", "+15017122661"),
        ("ApiVersion", "2010-04-01"),
        *more.items(),
    ]


def sign(url: str, form: list[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    text = url + "".join(name + value for name, value in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def altered(signature: str) -> str:
    """The signature with its first character changed (to another base64 one)."""
    return ("B" if signature[0] == "A" else "A") + signature[1:]


async def post_signed(
    running: Running,
    form: list[tuple[str, str]],
    *,
    signed_url: str | None = None,
    query: str = "",
    signature: str | None = None,
    **headers: str,
) -> httpx.Response:
    """POST the form to the Twilio route, signed over `signed_url` (default: the app's own)."""
    path = PATH + (f"?{query}" if query else "")
    if signature is None:
        signature = sign(signed_url or running.base_url + path, form)
    return await running.client.post(
        path,
        content=urlencode(form),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature, **headers},
    )


async def all_events(running: Running) -> list[dict[str, object]]:
    answer = await running.admin.get("/v1/events")
    assert answer.status_code == 200, answer.text
    events: list[dict[str, object]] = answer.json()["events"]
    return events


async def nothing_stored(running: Running) -> bool:
    quarantine = (await running.admin.get("/v1/quarantine")).json()["entries"]
    return await all_events(running) == [] and quarantine == []


# ---- signed callbacks ----------------------------------------------------------------


async def test_a_signed_callback_is_stored_once_and_its_retry_is_a_duplicate(
    running: Running,
) -> None:
    form = status_form("delivered", RawDlrDoneDate="2302141224")
    first = await post_signed(running, form)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "stored"
    assert first.json()["duplicate"] is False
    retry = await post_signed(running, form)
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert retry.json()["event_ids"] == first.json()["event_ids"]

    (event,) = await all_events(running)
    assert event["id"] == first.json()["event_ids"][0]
    assert (event["provider"], event["source"], event["channel"]) == ("twilio", "twilio", "sms")
    assert (event["message_id"], event["status"], event["provider_status"]) == (
        SID,
        "delivered",
        "delivered",
    )
    assert (event["recipient"], event["sender"]) == ("+15558675310", "+15017122661")
    assert event["occurred_at"] == "2023-02-14T12:24:00.000000Z"
    assert event["extra"] == {
        "SmsSid": SID,
        "SmsStatus": "delivered",
        "AccountSid": "ACf1e2d3c4b5a69788796a5b4c3d2e1f00",
        "ApiVersion": "2010-04-01",
        "RawDlrDoneDate": "2302141224",
        "request_id": first.headers["x-request-id"],  # the first's: the retry was a duplicate
    }


async def test_the_query_string_is_part_of_what_is_signed(running: Running) -> None:
    form = status_form("sent")
    query = "ref=order%2077&tenant=a"
    signed_with_query = running.base_url + f"{PATH}?{query}"
    ok = await post_signed(running, form, query=query, signed_url=signed_with_query)
    assert ok.status_code == 200, ok.text
    without = await post_signed(
        running, status_form("delivered"), query=query, signed_url=running.base_url + PATH
    )
    assert without.status_code == 403


async def test_a_signed_but_unreadable_callback_is_quarantined(running: Running) -> None:
    form = [("MessageSid", SID), ("SmsStatus", "sent")]  # no MessageStatus
    answer = await post_signed(running, form)
    assert answer.status_code == 200
    assert answer.json()["status"] == "quarantined"
    assert await all_events(running) == []


async def test_out_of_order_callbacks_leave_the_message_delivered(running: Running) -> None:
    for status in ("delivered", "sent", "read"):
        assert (await post_signed(running, status_form(status))).status_code == 200
    state = (await running.admin.get(f"/v1/messages/twilio/{SID}")).json()
    assert state["message"]["status"] == "delivered"
    assert [e["provider_status"] for e in state["events"]] == ["delivered", "sent", "read"]


# ---- refusals ------------------------------------------------------------------------


async def test_a_missing_or_bad_signature_is_403_and_stores_nothing(running: Running) -> None:
    form = status_form("delivered")
    own_url = running.base_url + PATH
    refused = [
        await running.client.post(PATH, content=urlencode(form), headers={"Content-Type": FORM}),
        await post_signed(running, form, signature=""),
        await post_signed(running, form, signature=sign(own_url, form, AUTH_TOKEN + "x")),
        await post_signed(running, form, signature=sign(own_url, status_form("failed"))),
        await post_signed(running, form, signature=altered(sign(own_url, form))),
        await post_signed(running, form, signature=sign(own_url + "/", form)),
        # The source's token as ?token= or HTTP Basic means nothing here.
        await running.client.post(
            PATH,
            params={"token": AUTH_TOKEN},
            content=urlencode(form),
            headers={"Content-Type": FORM},
            auth=("twilio", AUTH_TOKEN),
        ),
    ]
    for answer in refused:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden"
        assert "www-authenticate" not in answer.headers
    assert await nothing_stored(running)
    metrics = (await running.client.get("/metrics")).text
    assert (
        'dlrhub_callbacks_total{kind="status",outcome="forbidden",source="twilio"} 7.0' in metrics
    )


async def test_without_public_url_the_host_header_is_not_used(running: Running) -> None:
    form = status_form("delivered")
    forged = await post_signed(
        running,
        form,
        signed_url=f"http://evil.example{PATH}",
        Host="evil.example",
    )
    assert forged.status_code == 403
    assert await nothing_stored(running)


# ---- behind a proxy: server.public_url -------------------------------------------------


async def test_behind_a_proxy_the_url_is_rebuilt_from_public_url(behind_proxy: Running) -> None:
    running = behind_proxy
    form = status_form("delivered")
    forged = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-For": "203.0.113.9",
    }
    for wrong_url in (
        f"http://evil.example{PATH}",  # what the Host header says
        f"https://evil.example{PATH}",
        running.base_url + PATH,  # the address dlrhub listens on
    ):
        answer = await post_signed(running, form, signed_url=wrong_url, **forged)
        assert answer.status_code == 403, wrong_url
    assert await nothing_stored(running)

    answer = await post_signed(running, form, signed_url=PUBLIC_URL + PATH, **forged)
    assert answer.status_code == 200, answer.text
    with_port = await post_signed(
        running, status_form("read"), signed_url=f"https://dlr.example.com:443{PATH}", **forged
    )
    assert with_port.status_code == 200, with_port.text
    query = "ref=77"
    with_query = await post_signed(
        running,
        status_form("sent"),
        query=query,
        signed_url=f"{PUBLIC_URL}{PATH}?{query}",
        **forged,
    )
    assert with_query.status_code == 200, with_query.text
    assert len(await all_events(running)) == 3


async def test_the_printed_status_callback_url_has_no_secret(tmp_path: Path) -> None:
    server = f'public_url = "{PUBLIC_URL}"'
    config = load_config(write_twilio_config(tmp_path, server), env={})
    text = describe_endpoints(config, [])
    assert f"{PUBLIC_URL}{PATH}\n" in text
    assert AUTH_TOKEN not in text


# ---- an IPv6 listener without public_url ------------------------------------------------


@asynccontextmanager
async def serve_on_ipv6_loopback(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("::1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        yield f"http://[::1]:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_an_ipv6_listener_signs_its_address_in_brackets(tmp_path: Path) -> None:
    config = load_config(write_twilio_config(tmp_path, 'host = "::1"'), env={})
    form = status_form("delivered")
    async with (
        serve_on_ipv6_loopback(create_app(config, ingest_worker=False)) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(base_url + PATH, form)}
        answer = await client.post(PATH, content=urlencode(form), headers=headers)
    assert answer.status_code == 200, answer.text


# ---- the fake Twilio, end to end ---------------------------------------------------------


@asynccontextmanager
async def fake_twilio(**settings: object) -> AsyncIterator[tuple[FakeTwilio, httpx.AsyncClient]]:
    fake = FakeTwilio(auth_token=AUTH_TOKEN, step=0.05, **settings)  # type: ignore[arg-type]
    async with (
        serve_app(fake.app, lifespan="off") as base_url,
        httpx.AsyncClient(base_url=base_url, auth=(fake.account_sid, AUTH_TOKEN)) as client,
    ):
        yield fake, client
        await fake.settle()


async def send(client: httpx.AsyncClient, fake: FakeTwilio, callback: str, to: str) -> str:
    answer = await client.post(
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        data={
            "To": to,
            "From": "+15017122661",
            "Body": "Your code is 1234",
            "StatusCallback": callback,
        },
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "queued"
    sid: str = answer.json()["sid"]
    return sid


async def test_the_fakes_status_callbacks_are_stored(running: Running) -> None:
    callback = running.base_url + PATH
    async with fake_twilio(progression=("sent", "delivered")) as (fake, client):
        delivered = await send(client, fake, callback, "+15558675310")
        fake.progression = ("sent", "undelivered")
        lost = await send(client, fake, callback, "whatsapp:+15558675311")
        await fake.settle()
        fetched = await client.get(f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{lost}.json")
        assert fetched.json()["status"] == "undelivered"

    assert {sent.status_code for sent in fake.callbacks} == {200}
    assert len(fake.callbacks) == 4
    state = (await running.admin.get(f"/v1/messages/twilio/{delivered}")).json()
    assert state["message"]["status"] == "delivered"
    assert [e["provider_status"] for e in state["events"]] == ["sent", "delivered"]
    assert state["events"][1]["extra"]["RawDlrDoneDate"]
    assert state["events"][1]["occurred_at"] is not None
    state = (await running.admin.get(f"/v1/messages/twilio/{lost}")).json()
    assert state["message"]["status"] == "undelivered"
    last = state["events"][-1]
    assert (last["channel"], last["recipient"]) == ("whatsapp", "+15558675311")
    assert last["extra"]["ErrorCode"] == "30003"


@pytest.mark.parametrize("fault", ["missing", "wrong_token"])
async def test_the_fakes_signature_faults_are_refused(running: Running, fault: str) -> None:
    async with fake_twilio(signature_fault=fault) as (fake, client):
        await send(client, fake, running.base_url + PATH, "+15558675310")
        await fake.settle()
    assert [sent.status_code for sent in fake.callbacks] == [403, 403]
    assert await nothing_stored(running)


async def test_the_fakes_api_refuses_bad_credentials_and_requests() -> None:
    async with fake_twilio(autoplay=False) as (fake, client):
        path = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        unauthorized = await client.post(path, data={"To": "+1"}, auth=(fake.account_sid, "x"))
        assert unauthorized.status_code == 401
        assert unauthorized.json()["code"] == 20003
        no_to = await client.post(path, data={"From": "+15017122661", "Body": "hi"})
        assert (no_to.status_code, no_to.json()["code"]) == (400, 21604)
        service = await client.post(
            path, data={"To": "+15558675310", "MessagingServiceSid": "MG1", "Body": "hi"}
        )
        assert (service.status_code, service.json()["status"]) == (201, "accepted")
        await fake.play(service.json()["sid"])  # no StatusCallback: nothing is sent
    assert fake.callbacks == []


async def test_the_fakes_demo_command(running: Running) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dlrhub.providers.twilio.fake",
        "--status-callback",
        running.base_url + PATH,
        "--auth-token",
        AUTH_TOKEN,
        "--step",
        "0.01",
        "--progression",
        "sent,delivered,read",
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output
    lines = output.decode().splitlines()
    assert [line.split(":")[0] for line in lines] == ["sent", "delivered", "read"]
    assert all(': 200 {"status":"stored"' in line for line in lines), lines
    assert [e["provider_status"] for e in await all_events(running)] == [
        "sent",
        "delivered",
        "read",
    ]
