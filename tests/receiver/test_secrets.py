"""Source tokens and passwords never reach logs, stored payloads or answers."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from dlrhub.redact import AccessLogRedactor, redact_form, redact_query, redact_text
from tests.conftest import SOURCE_TOKEN, Running, write_config
from tests.serving import serve_app


def test_redact_query_keeps_everything_but_secret_values() -> None:
    query = "status=1&token=abc&API-KEY=k1&to%6Ben=sneaky&phone=%2B34&password=p&plain"
    assert redact_query(query) == (
        "status=1&token=[REDACTED]&API-KEY=[REDACTED]&to%6Ben=[REDACTED]&phone=%2B34"
        "&password=[REDACTED]&plain"
    )
    assert redact_form(b"event=sent&key=s3cr3t") == b"event=sent&key=[REDACTED]"
    assert redact_text("token s3cr3t in s3cr3t", ["s3cr3t", ""]) == "token [REDACTED] in [REDACTED]"


async def test_token_is_not_in_the_access_log(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("uvicorn.access").addFilter(AccessLogRedactor())
    app = create_app(config)
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        async with serve_app(app, access_log=True) as base_url, httpx.AsyncClient() as client:
            answer = await client.get(
                f"{base_url}/hooks/nrs360/dlr?token={SOURCE_TOKEN}&status=1&ref=x"
            )
            assert answer.status_code == 200
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert any("/hooks/nrs360/dlr?token=[REDACTED]&status=1" in line for line in access)
    assert not any(SOURCE_TOKEN in r.getMessage() for r in caplog.records)


async def test_token_and_passwords_are_not_stored(running: Running) -> None:
    await running.client.post(
        f"/hooks/nrs360/events?token={SOURCE_TOKEN}",
        content="event=sent&id=1&password=hunter22&apikey=k-123456",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    await running.client.get(
        f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&status=1&key=k-123456&ref=r-1"
    )
    database = sqlite3.connect(running.config.sqlite_path)
    dump = "\n".join(database.iterdump())
    database.close()
    for secret in (SOURCE_TOKEN, "hunter22", "k-123456"):
        assert secret not in dump
    events = (await running.admin.get("/v1/events")).json()["events"]
    assert len(events) == 2
    assert SOURCE_TOKEN not in str(events)


async def test_store_unavailable_is_503_with_retry_after(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), env={})
    app = create_app(config)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        await app.state.store.close()
        answer = await client.get(f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&status=1")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["error"] == "store_unavailable"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        await app.state.store.open()  # so that shutdown closes a store that is open
