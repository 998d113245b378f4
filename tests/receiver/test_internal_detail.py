"""Answers never carry internal detail: no file path, DSN, host name or exception text.

The store fails for real reasons here (its SQLite file cannot be written, its
PostgreSQL is gone) and every route that touches it is asked: each answer is
the fixed 503, and the cause, with the path or the DSN and host, is in the log.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import load_config
from dlrhub.receiver.errors import STORE_UNAVAILABLE_DETAIL
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, write_config
from tests.outbound.conftest import outbound_config
from tests.payloads import FORM, event_form
from tests.postgres import POSTGRES_DSN, fresh_schema
from tests.serving import serve_app
from tests.sinks.conftest import Proxy

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKEN = {"token": SOURCE_TOKEN}
EVENT = event_form("delivered")


async def ask_every_store_route(client: httpx.AsyncClient) -> list[httpx.Response]:
    """Every route that reads or writes the store, asked once."""
    return [
        await client.post("/hooks/nrs360/events", params=TOKEN, content=EVENT, headers=FORM),
        await client.get("/hooks/nrs360/dlr", params={**TOKEN, "status": "1", "ref": "r-1"}),
        await client.get("/v1/events", headers=ADMIN),
        await client.get("/v1/messages/nrs360/m-1", headers=ADMIN),
        await client.get("/v1/quarantine", headers=ADMIN),
        await client.get("/v1/analytics/delivery", headers=ADMIN),
        await client.get("/v1/quarantine/1", headers=ADMIN),
        await client.post("/v1/quarantine/1/reprocess", headers=ADMIN),
        await client.get("/readyz"),
    ]


def assert_fixed_503s(answers: Sequence[httpx.Response], internal: Sequence[str]) -> None:
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path}"
        assert answer.status_code == 503, f"{where}: {answer.text}"
        assert answer.headers["retry-after"] == "5", where
        assert answer.json() == {"error": "store_unavailable", "detail": STORE_UNAVAILABLE_DETAIL}
        for detail in internal:
            assert detail not in answer.text, f"{where} answered {detail!r}"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def test_a_failing_sqlite_store_answers_without_its_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_config(tmp_path), env={})
    app = create_app(config)

    async def disk_error(*args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    caplog.set_level(logging.WARNING)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        backend = app.state.store.backend  # the SQLite file fails as a broken disk does
        original = backend.transact, backend.read
        backend.transact = backend.read = disk_error
        try:
            answers = await ask_every_store_route(client)
        finally:
            backend.transact, backend.read = original
    path = str(config.sqlite_path)
    assert_fixed_503s(answers, [str(tmp_path), "sqlite", "SQLite", "disk I/O error"])
    assert f"SQLite store at {path} could not commit: disk I/O error" in logged(caplog)
    assert f"SQLite store at {path} could not be read: disk I/O error" in logged(caplog)


@pytest.mark.parametrize("ingest_worker", [False, True], ids=["in_process", "ingest_worker"])
async def test_an_unreachable_postgres_answers_without_its_dsn_or_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ingest_worker: bool
) -> None:
    database = urlsplit(POSTGRES_DSN)
    password = database.password or "very-secret-pass"  # trust auth never asks for it
    proxy = Proxy(database.port or 5432)  # PostgreSQL on loopback, reached through a cut-able hop
    await proxy.start()
    dsn = f"postgresql://{database.username}:{password}@localhost:{proxy.port}{database.path}"
    caplog.set_level(logging.WARNING)
    try:
        async with fresh_schema() as schema:
            store = f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}"\n'
            config = load_config(write_config(tmp_path, extra=store), env={})
            app = create_app(config, ingest_worker=ingest_worker)
            async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
                assert (await client.get("/readyz")).status_code == 200
                await proxy.close()  # connections dropped, the port refuses new ones
                answers = await ask_every_store_route(client)
    finally:
        await proxy.close()
    internal = ["localhost", str(proxy.port), "postgresql", "PostgreSQL", schema, password]
    assert_fixed_503s(answers, internal)
    log = logged(caplog)
    assert f"@localhost:{proxy.port}" in log and schema in log
    assert password not in log


async def test_an_unreachable_provider_answers_without_its_address(
    tmp_path: Path, refused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    account = {
        "name": "onx",
        "provider": "onurix",
        "base_url": f"http://localhost:{refused_port}/api/v1",
        "client": "1234",
        "key": "key-0123456789abcdef",
        "retries": 0,
    }
    app = create_app(outbound_config(tmp_path, [account]))
    caplog.set_level(logging.WARNING)
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        answer = await client.post(
            "/v1/messages",
            headers=ADMIN,
            json={"account": "onx", "to": "573150123456", "text": "Hola"},
        )
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "provider_unavailable",
        "detail": "onurix account 'onx': the provider could not be reached or kept failing;"
        " the cause is logged",
        "provider_code": None,
    }
    assert f"localhost:{refused_port}" not in answer.text and str(refused_port) not in answer.text
    assert "could not connect: ConnectError" in logged(caplog)


async def test_a_refused_address_and_bad_json_are_described_not_quoted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_config(tmp_path), env={})
    caplog.set_level(logging.WARNING)
    async with serve_app(create_app(config)) as base_url, httpx.AsyncClient() as client:
        # The `office` source takes 192.0.2.0/24 only; behind a proxy the address seen
        # would be the proxy's own.
        refused = await client.get(
            f"{base_url}/hooks/office/dlr", params={"token": f"{SOURCE_TOKEN}-office"}
        )
        bad_json = await client.post(
            f"{base_url}/v1/messages",
            headers={**ADMIN, "Content-Type": "application/json"},
            content=b'{"account": ',
        )
    assert refused.status_code == 403
    assert "127.0.0.1" not in refused.text
    assert "refused a callback to source office from address 127.0.0.1" in logged(caplog)
    assert bad_json.status_code == 400
    assert bad_json.json()["detail"] == "the body is not valid JSON (line 1, column 13)"
