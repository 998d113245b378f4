"""Source tokens and secrets never reach logs, stored payloads, answers or sinks, and
redaction never changes what identifies a callback (dlrhub/receiver/ingest.py)."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from dlrhub.redact import REDACTED, redact_form, redact_query, redact_text
from tests.conftest import SOURCE_TOKEN, Running, run_app, write_config
from tests.processes import dlrhub_serve
from tests.serving import serve_app
from tests.waiting import eventually_async


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
    app = create_app(config)
    with caplog.at_level(logging.INFO, logger="dlrhub.access"):
        async with serve_app(app) as base_url, httpx.AsyncClient() as client:
            answer = await client.get(
                f"{base_url}/hooks/nrs360/dlr?token={SOURCE_TOKEN}&status=1&ref=x"
            )
            assert answer.status_code == 200
    access = [r for r in caplog.records if r.name == "dlrhub.access"]
    assert any("/hooks/nrs360/dlr?token=[REDACTED]&status=1" in r.getMessage() for r in access)
    assert any(r.__dict__["path"].startswith("/hooks/nrs360/dlr?token=[REDACTED]") for r in access)
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


# ---- redaction after normalizing and deduplicating, before the first write ------------

KEYED_REF = 'dlr_params = { ref = "key" }'  # the receipt's reference arrives as `key=`
NEW_TOKEN = "rotated-source-token-9876543210"

# Values of parameters and members named like a secret that no configuration names.
SECRETS = {
    "client_secret": "cs-0123456789",
    "password": "pw-0123456789",
    "api_key": "ak-0123456789",
    "auth_token": "at-0123456789",
    "refreshToken": "rt-0123456789",
    "apiKey": "pk-0123456789",
    "sslpassword": "sp-0123456789",
    "x-signature": "sg-0123456789",
}


def stored_bytes(config: Config) -> bytes:
    """Every byte of the SQLite database and of its WAL, as they are on disk."""
    path = config.sqlite_path
    files = (path, path.with_name(path.name + "-wal"))
    return b"".join(file.read_bytes() for file in files if file.exists())


def assert_no_secret_in(
    what: str, text: str | bytes, secrets: tuple[str, ...] = (SOURCE_TOKEN, NEW_TOKEN)
) -> None:
    for secret in (*secrets, *SECRETS.values()):
        found = secret.encode() in text if isinstance(text, bytes) else secret in text
        assert not found, f"{secret} is in {what}"


@pytest.fixture(params=["in_process", "ingest_worker"])
async def keyed(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The app with a source whose receipts carry their reference as `key=`."""
    config = load_config(write_config(tmp_path, source_extra=KEYED_REF), env={})
    async with run_app(config, ingest_worker=request.param == "ingest_worker") as running:
        yield running


async def receipt(running: Running, token: str = SOURCE_TOKEN, **params: str) -> dict[str, Any]:
    answer = await running.client.get("/hooks/nrs360/dlr", params={"token": token, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_receipts_that_differ_only_in_a_parameter_named_key_are_two_events(
    keyed: Running,
) -> None:
    first = await receipt(keyed, status="1", phone="+34600111222", key="order-1")
    second = await receipt(keyed, status="1", phone="+34600111222", key="order-2")
    assert (first["duplicate"], second["duplicate"]) == (False, False)
    assert first["event_ids"] != second["event_ids"]
    again = await receipt(keyed, status="1", phone="+34600111222", key="order-1")
    assert again == {**first, "duplicate": True}

    events = (await keyed.admin.get("/v1/events")).json()["events"]
    assert sorted(event["correlation_id"] for event in events) == ["order-1", "order-2"]
    stored = stored_bytes(keyed.config)
    assert b"key=order-1" in stored  # named by the configuration: kept, so reprocess reads it
    assert SOURCE_TOKEN.encode() not in stored


async def test_secret_named_values_are_redacted_in_raw_payloads_events_and_quarantine(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stored = await receipt(
        running,
        status="1",
        ref="order-3",
        client_secret=SECRETS["client_secret"],
        sslpassword=SECRETS["sslpassword"],
    )
    assert stored["status"] == "stored"
    quarantined = await receipt(running, ref="order-4", api_key=SECRETS["api_key"])  # no status
    assert quarantined["status"] == "quarantined"
    extra = {"campaign": "otoño", "auth_token": SECRETS["auth_token"]}
    extra["nested"] = [{"refreshToken": SECRETS["refreshToken"]}]  # type: ignore[assignment]
    form = await running.client.post(
        "/hooks/nrs360/events",
        params={"token": SOURCE_TOKEN},
        content=f"event=sent&id=m-5&extra={quote_plus(json.dumps(extra))}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.json()["status"] == "stored", form.text
    progress = {
        "data": {
            "id": "job-6",
            "status": "finished",
            "apiKey": SECRETS["apiKey"],
            "webhook": {"url": "https://example.com/x", "password": SECRETS["password"]},
        }
    }
    answer = await running.client.post(
        "/hooks/nrs360/progress", params={"token": SOURCE_TOKEN}, json=progress
    )
    assert answer.json()["status"] == "stored", answer.text
    broken = {"data": {"id": "job-7", "x-signature": SECRETS["x-signature"]}}  # no status
    answer = await running.client.post(
        "/hooks/nrs360/progress", params={"token": SOURCE_TOKEN}, json=broken
    )
    assert answer.json()["status"] == "quarantined", answer.text

    events = {
        event["message_id"]: event
        for event in (await running.admin.get("/v1/events")).json()["events"]
    }
    assert events["order-3"]["extra"]["params"] == {
        "client_secret": REDACTED,
        "sslpassword": REDACTED,
    }
    assert events["m-5"]["extra"]["extra"] == {
        "campaign": "otoño",
        "auth_token": REDACTED,
        "nested": [{"refreshToken": REDACTED}],
    }
    assert events["job-6"]["extra"]["apiKey"] == REDACTED
    assert events["job-6"]["extra"]["webhook"] == {
        "url": "https://example.com/x",
        "password": REDACTED,
    }
    entries = (await running.admin.get("/v1/quarantine")).json()["entries"]
    assert len(entries) == 2
    shown = [
        (await running.admin.get(f"/v1/quarantine/{entry['id']}")).json()["raw"]
        for entry in entries
    ]
    assert "api_key=[REDACTED]" in shown[0]["query"]
    assert "token=[REDACTED]" in shown[0]["query"]
    assert json.loads(shown[1]["body"]) == {"data": {"id": "job-7", "x-signature": REDACTED}}

    answers = (await running.admin.get("/v1/events")).text + str(shown)
    assert_no_secret_in("the /v1 answers", answers)
    assert_no_secret_in("the database or its WAL", stored_bytes(running.config))
    assert_no_secret_in("the logs", "\n".join(record.getMessage() for record in caplog.records))


@pytest.mark.parametrize("mode", ["in_process", "ingest_worker"])
async def test_a_retry_after_the_token_changed_is_a_duplicate(tmp_path: Path, mode: str) -> None:
    path = write_config(tmp_path)
    worker = mode == "ingest_worker"
    basic = {"Authorization": "Basic " + base64.b64encode(f"x:{SOURCE_TOKEN}".encode()).decode()}
    async with run_app(load_config(path, env={}), ingest_worker=worker) as running:
        by_query = await receipt(running, status="1", ref="order-8")
        by_basic = await running.client.get("/hooks/nrs360/dlr?status=1&ref=order-9", headers=basic)
        assert by_basic.json()["duplicate"] is False

    path.write_text(path.read_text().replace(SOURCE_TOKEN, NEW_TOKEN))  # rotated, then restarted
    config = load_config(path, env={})
    basic = {"Authorization": "Basic " + base64.b64encode(f"x:{NEW_TOKEN}".encode()).decode()}
    async with run_app(config, ingest_worker=worker) as running:
        old = await running.client.get(
            "/hooks/nrs360/dlr", params={"token": SOURCE_TOKEN, "status": "1", "ref": "order-8"}
        )
        assert old.status_code == 401
        retry = await receipt(running, NEW_TOKEN, status="1", ref="order-8")
        assert retry == {**by_query, "duplicate": True}
        retry_basic = await running.client.get(
            "/hooks/nrs360/dlr?status=1&ref=order-9", headers=basic
        )
        assert retry_basic.json() == {**by_basic.json(), "duplicate": True}
        other = await receipt(running, NEW_TOKEN, status="2", ref="order-8")  # differs elsewhere
        assert other["duplicate"] is False
        events = (await running.admin.get("/v1/events")).json()["events"]
        assert len(events) == 3
    database = sqlite3.connect(config.sqlite_path)
    try:
        assert database.execute("SELECT count(*) FROM raw_callbacks").fetchone() == (3,)
    finally:
        database.close()
    assert_no_secret_in("the database or its WAL", stored_bytes(config))


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_serve_keeps_secrets_out_of_sinks_logs_and_the_database(
    tmp_path: Path, log_format: str
) -> None:
    """`dlrhub serve` as users run it: ingest worker, access log, a sink delivering."""
    out = tmp_path / "events.jsonl"
    path = write_config(tmp_path, f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{out}"\n')
    path.write_text(f'log_level = "debug"\nlog_format = "{log_format}"\n' + path.read_text())
    config = load_config(path, env={})
    async with (
        dlrhub_serve("--config", str(path), log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        banner = server.output()  # the callback URLs to give the provider, token included
        answer = await client.get(
            "/hooks/nrs360/dlr",
            params={"token": SOURCE_TOKEN, "status": "1", "ref": "o-1", **SECRETS},
        )
        assert answer.json()["status"] == "stored", answer.text
        progress = {"data": {"id": "job-1", "status": "started", "auth": dict(SECRETS)}}
        answer = await client.post(
            "/hooks/nrs360/progress", params={"token": SOURCE_TOKEN}, json=progress
        )
        assert answer.json()["status"] == "stored", answer.text
        await eventually_async(
            lambda: out.exists() and len(out.read_bytes().splitlines()) == 2,
            30,
            "the sink to deliver both events",
        )
    delivered = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert delivered[0]["extra"]["params"] == dict.fromkeys(SECRETS, REDACTED)
    assert delivered[1]["extra"]["auth"] == REDACTED
    assert_no_secret_in("the sink's deliveries", out.read_bytes())
    log = server.output().removeprefix(banner)
    assert_no_secret_in("the log", log)
    assert "token=[REDACTED]" in log  # the access log line
    if log_format == "json":  # every line an object (json escapes nothing that hides a secret)
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        access = [line for line in lines if line["logger"] == "dlrhub.access"]
        assert any(line["path"].startswith("/hooks/nrs360/dlr?token=[REDACTED]") for line in access)
        assert_no_secret_in("the decoded log lines", json.dumps(lines, ensure_ascii=False))
    assert_no_secret_in("the database or its WAL", stored_bytes(config))
