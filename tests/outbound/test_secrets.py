"""Credentials never reach logs, stored raw payloads, tracking rows, errors or API answers.

Every account's secrets contain a sentinel; sends, polls, refusals, retries,
malformed answers and authentication failures run through the real app, then
every log record, every byte of the SQLite files and every answer is searched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.outbound.errors import ProviderError
from dlrhub.outbound.poller import Poller
from dlrhub.providers.conectaline.fake import FakeConectaline
from dlrhub.providers.nrs360.fake import FakeNrs360
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.providers.uvox.fake import FakeUvox
from dlrhub.testing.faults import Fault
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN
from tests.outbound.conftest import outbound_config
from tests.serving import serve_app

SENTINEL = "SENTINEL7secret"


async def test_no_credential_ever_leaks(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    onurix: tuple[FakeOnurix, str],
    uvox: tuple[FakeUvox, str],
    conectaline: tuple[FakeConectaline, str],
    nrs360: tuple[FakeNrs360, str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # configure_logging quiets it otherwise
    (fo, onurix_base), (fu, uvox_base) = onurix, uvox
    (fc, conectaline_base), (fn, nrs360_base) = conectaline, nrs360
    fo.key = f"{SENTINEL}-onurix"
    fu.apikey = f"{SENTINEL}-uvox"
    fc.password = f"{SENTINEL}-conectaline"
    fn.password = f"{SENTINEL}-nrs360"
    secrets = [fo.key, fu.apikey, fc.password, fn.password, SOURCE_TOKEN, ADMIN_TOKEN]
    accounts = [
        {
            "name": "onx",
            "provider": "onurix",
            "base_url": f"{onurix_base}/api/v1",
            "client": fo.client,
            "key": fo.key,
            "retries": 1,
        },
        {
            "name": "onx-wrong",
            "provider": "onurix",
            "base_url": f"{onurix_base}/api/v1",
            "client": fo.client,
            "key": f"{SENTINEL}-wrong",
        },
        {
            "name": "uvx",
            "provider": "uvox",
            "base_url": f"{uvox_base}/api/get-api/v1",
            "accountnumber": fu.accountnumber,
            "apikey": fu.apikey,
            "sender": "UVox",
        },
        {
            "name": "uvx-wrong",
            "provider": "uvox",
            "base_url": f"{uvox_base}/api/get-api/v1",
            "accountnumber": fu.accountnumber,
            "apikey": f"{SENTINEL}-wrong-uvox",
        },
        {
            "name": "cnl",
            "provider": "conectaline",
            "base_url": f"{conectaline_base}/v1",
            "email": fc.email,
            "password": fc.password,
            "configuration_name": fc.configuration_name,
        },
        {
            "name": "cnl-wrong",
            "provider": "conectaline",
            "base_url": f"{conectaline_base}/v1",
            "email": fc.email,
            "password": f"{SENTINEL}-wrong-cnl",
            "configuration_name": "x",
        },
        {
            "name": "nrs",
            "provider": "360nrs",
            "base_url": f"{nrs360_base}/api/rest",
            "username": fn.username,
            "password": fn.password,
            "sender": "SHOP",
            "source": "nrs360",
        },
    ]
    config = outbound_config(tmp_path, accounts, enabled=True)
    poller = Poller(config, None)
    app = create_app(config, services=[poller])
    poller.bind(app.state.store, app.state.metrics.registry)
    answers: list[str] = []
    async with serve_app(app) as base_url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as admin:

            async def send(account: str, *to: str, **extra: object) -> None:
                body = {"account": account, "to": list(to), "text": "Hola", **extra}
                answers.append((await admin.post("/v1/messages", json=body)).text)

            fo.inject(Fault("status", path="/api/v1/send-sms", status=520))
            await send("onx", "573150123456", "57")
            fo.inject(Fault("status", path="/api/v1/send-sms", status=520, times=5))
            await send("onx", "573150123456")
            await send("onx-wrong", "573150123456")
            fo.inject(Fault("malformed", path="/api/v1/send-sms"))
            await send("onx", "573150123456")
            await send("uvx", "13058888888", "13055454xx")
            await send("uvx-wrong", "13058888888")
            await send("cnl", "34600100100")
            fc.inject(Fault("expire_token", path="/v1/push"))
            await send("cnl", "34600100200")
            await send("cnl-wrong", "34600100100")
            await send("nrs", "34666555444", "34")
            fn.password = "changed-on-their-side"
            await send("nrs", "34666555444")
            tracked = {"account": "onx-wrong", "messages": [{"message_id": "msg-1"}]}
            answers.append((await admin.post("/v1/tracking", json=tracked)).text)
            fo.inject(Fault("malformed", path="/api/v1/messages-state", times=3))
            await poller.run_once()
            answers.append((await admin.get("/readyz")).text)
            answers.append((await admin.get("/metrics")).text)
            answers.append((await admin.get("/v1/events", params={"limit": 1000})).text)
            answers.append((await admin.get("/v1/quarantine")).text)

    assert any("provider_auth_failed" in answer for answer in answers)
    assert any("quarantined" in record.getMessage() for record in caplog.records) or any(
        "entries" in answer for answer in answers
    )
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("key=%5BREDACTED%5D" in line or "key=[REDACTED]" in line for line in httpx_lines)
    texts = [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    texts += answers
    for text in texts:
        for secret in secrets[:4]:
            assert secret not in text
        assert SENTINEL not in text, text
    data_files = list((tmp_path / "data").glob("dlrhub.sqlite3*"))
    assert data_files
    for path in data_files:
        content = path.read_bytes()
        assert SENTINEL.encode() not in content, path
        assert SOURCE_TOKEN.encode() not in content, path  # the notificationUrl's token too


def test_typed_errors_scrub_credentials_from_their_text() -> None:
    from dlrhub.outbound.settings import AccountConfig
    from dlrhub.outbound.transport import Transport

    account = AccountConfig(
        name="a", provider="onurix", base_url="http://x", settings={"key": f"{SENTINEL}/+&"}
    )
    transport = Transport(account)
    error = transport.error(
        ProviderError, f"url ?key={SENTINEL}%2F%2B%26 and {SENTINEL}/+&", code=f"{SENTINEL}/+&"
    )
    assert SENTINEL not in str(error) and SENTINEL not in repr(error)
