"""The real app under Uvicorn on loopback, driven the way 360NRS drives it."""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from dlrhub.cli import main as cli_main
from dlrhub.config import Config
from dlrhub.event import RawCallback
from dlrhub.receiver.hooks import Hooks
from dlrhub.receiver.ingest import Ingested
from dlrhub.receiver.ingest_worker import IngestWorkerError
from dlrhub.receiver.metrics import Metrics
from dlrhub.store import SQLiteStore
from tests.conftest import SOURCE_TOKEN, Running, write_config
from tests.payloads import FORM, event_form
from tests.serving import serve_app

TOKEN = {"token": SOURCE_TOKEN}


async def post_event(running: Running, body: str) -> httpx.Response:
    return await running.client.post(
        "/hooks/nrs360/events", params=TOKEN, content=body, headers=FORM
    )


async def all_events(running: Running, **params: str) -> list[dict[str, object]]:
    answer = await running.admin.get("/v1/events", params=params)
    assert answer.status_code == 200, answer.text
    events: list[dict[str, object]] = answer.json()["events"]
    return events


async def test_each_kind_of_callback_is_stored_and_queryable(running: Running) -> None:
    answer = await post_event(running, event_form("delivered"))
    assert answer.status_code == 200
    assert answer.json()["status"] == "stored"

    dlr = await running.client.get(
        "/hooks/nrs360/dlr?token=" + SOURCE_TOKEN + "&status=1&phone=+34600111222&sender=SHOP"
        "&ref=order-77"
    )
    assert dlr.status_code == 200, dlr.text

    progress = {
        "data": {
            "id": 2,
            "status": "finished",
            "total": 1,
            "processed": 1,
            "valid": 1,
            "cost": 0.0035,
            "currency": "EUR",
            "createdAt": "2018-09-20T07:23:19+00:00",
            "updatedAt": "2018-09-20T07:23:56+00:00",
            "finishedAt": "2018-09-20T07:23:56+00:00",
            "resultUrl": "https://dashboard.360nrs.com/api/rest/validation/emails/2/result",
            "error": "",
        }
    }
    answer = await running.client.post("/hooks/nrs360/progress", params=TOKEN, json=progress)
    assert answer.status_code == 200, answer.text

    events = await all_events(running)
    assert [e["type"] for e in events] == ["message.status", "message.status", "job.progress"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    delivered, receipt, job = events
    assert delivered["status"] == "delivered"
    assert delivered["message_id"] == "5f3a1c2b9d"
    assert delivered["occurred_at"] == "2026-11-20T10:15:00.000000Z"  # naive dates: UTC
    assert receipt["status"] == "delivered"
    assert receipt["recipient"] == "+34600111222"
    assert receipt["correlation_id"] == "order-77"
    assert job["provider_status"] == "finished"
    assert job["occurred_at"] == "2018-09-20T07:23:56.000000Z"

    paged = await all_events(running, after_seq=str(delivered["seq"]), limit="1")
    assert [e["id"] for e in paged] == [receipt["id"]]
    only_jobs = await all_events(running, type="job.progress")
    assert [e["id"] for e in only_jobs] == [job["id"]]


async def test_a_retried_callback_is_acknowledged_and_stored_once(running: Running) -> None:
    body = event_form("sent")
    first = await post_event(running, body)
    retry = await post_event(running, body)
    assert first.status_code == retry.status_code == 200
    assert first.json()["duplicate"] is False
    assert retry.json()["duplicate"] is True
    assert retry.json()["event_ids"] == first.json()["event_ids"]
    assert len(await all_events(running)) == 1


async def test_concurrent_duplicates_in_one_commit_are_stored_once(running: Running) -> None:
    body = event_form("delivered", message_id="same-batch")
    answers = await asyncio.gather(*(post_event(running, body) for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert len({tuple(a.json()["event_ids"]) for a in answers}) == 1
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    assert len(await all_events(running)) == 1


async def test_bad_or_missing_token_is_401_and_stores_nothing(running: Running) -> None:
    body = event_form("delivered")
    wrong = await running.client.post(
        "/hooks/nrs360/events", params={"token": "nope"}, content=body, headers=FORM
    )
    missing = await running.client.post("/hooks/nrs360/events", content=body, headers=FORM)
    for answer in (wrong, missing):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    assert await all_events(running) == []


async def test_http_basic_with_the_token_as_password_is_accepted(running: Running) -> None:
    credentials = base64.b64encode(f"360nrs:{SOURCE_TOKEN}".encode()).decode()
    answer = await running.client.post(
        "/hooks/nrs360/events",
        content=event_form("delivered"),
        headers={**FORM, "Authorization": f"Basic {credentials}"},
    )
    assert answer.status_code == 200, answer.text


async def test_refusals_are_json_with_the_right_status(running: Running) -> None:
    client = running.client
    unknown = await client.post("/hooks/nobody/events", params=TOKEN, content="a=b", headers=FORM)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_source"

    forbidden = await client.post(
        "/hooks/office/events",
        params={"token": SOURCE_TOKEN + "-office"},
        content=event_form("delivered"),
        headers=FORM,
    )
    assert forbidden.status_code == 403  # the test client is 127.0.0.1, not 192.0.2.0/24

    too_large = await client.post(
        "/hooks/nrs360/events", params=TOKEN, content="x=" + "y" * 70_000, headers=FORM
    )
    assert too_large.status_code == 413
    assert too_large.json()["error"] == "payload_too_large"

    wrong_type = await client.post("/hooks/nrs360/events", params=TOKEN, json={"event": "sent"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"] == "unsupported_media_type"

    wrong_method = await client.get("/hooks/nrs360/events", params=TOKEN)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"

    for path in ("/hooks/nrs360/nothing", "/hooks/nrs360/events/more", "/hooks/", "/hooks//dlr"):
        answer = await client.post(path, params=TOKEN, content="a=b", headers=FORM)
        assert answer.status_code == 404, path
        assert set(answer.json()) == {"error", "detail"}

    nowhere = await client.get("/nowhere")
    assert nowhere.status_code == 404
    assert set(nowhere.json()) == {"error", "detail"}
    assert await all_events(running) == []


async def test_chunked_body_over_the_limit_is_413(running: Running) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 8192

    answer = await running.client.post(
        "/hooks/nrs360/events", params=TOKEN, content=chunks(), headers=FORM
    )
    assert answer.status_code == 413


async def test_out_of_order_sent_after_delivered_leaves_delivered(running: Running) -> None:
    delivered = event_form("delivered", message_id="m-1", eventDate="2026-11-20 10:16:00")
    late_sent = event_form("sent", message_id="m-1", eventDate="2026-11-20 10:15:00")
    opened = event_form("opened", message_id="m-1", eventDate="2026-11-20 10:20:00")
    for body in (delivered, late_sent, opened):
        assert (await post_event(running, body)).status_code == 200
    answer = await running.admin.get("/v1/messages/360nrs/m-1")
    assert answer.status_code == 200
    state = answer.json()
    assert state["message"]["status"] == "delivered"
    assert [e["provider_status"] for e in state["events"]] == ["delivered", "sent", "opened"]
    missing = await running.admin.get("/v1/messages/nrs360/never-sent")
    assert missing.status_code == 404


async def test_unknown_dlr_status_is_kept_and_never_overrides(running: Running) -> None:
    base = f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&phone=%2B34600111222&ref=r-9"
    assert (await running.client.get(base + "&status=8")).status_code == 200
    assert (await running.client.get(base + "&status=99")).status_code == 200
    state = (await running.admin.get("/v1/messages/nrs360/r-9")).json()
    assert state["message"]["status"] == "sent"
    assert [e["status"] for e in state["events"]] == ["sent", "unknown"]
    assert state["events"][1]["provider_status"] == "99"


async def test_quarantine_then_reprocess_with_a_fixed_config(
    running: Running, tmp_path: Path
) -> None:
    # The customer built its notificationUrl with "estado" instead of "status".
    url = f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&estado=DELIVRD&phone=34600111222&ref=q-1"
    answer = await running.client.get(url)
    assert answer.status_code == 200
    assert answer.json()["status"] == "quarantined"
    retry = await running.client.get(url)
    assert retry.json() == {**answer.json(), "duplicate": True}

    listing = (await running.admin.get("/v1/quarantine")).json()["entries"]
    assert len(listing) == 1
    entry_id = listing[0]["id"]
    shown = (await running.admin.get(f"/v1/quarantine/{entry_id}")).json()
    assert SOURCE_TOKEN not in orjson.dumps(shown).decode()
    assert "token=[REDACTED]" in shown["raw"]["query"]
    assert await all_events(running) == []

    still = await running.admin.post(f"/v1/quarantine/{entry_id}/reprocess")
    assert still.json()["status"] == "failed_again"

    fixed = write_config(tmp_path / "fixed", source_extra='dlr_params = { status = "estado" }')
    data_dir = str(running.config.data_dir)
    arguments = ["quarantine", "reprocess", "--all", "--config", str(fixed), "--data-dir", data_dir]
    code = await asyncio.to_thread(cli_main, arguments)
    assert code == 0
    events = await all_events(running)
    assert [(e["status"], e["correlation_id"]) for e in events] == [("delivered", "q-1")]
    pending = (await running.admin.get("/v1/quarantine", params={"state": "pending"})).json()
    assert pending["entries"] == []


async def test_quarantine_drop_over_the_api_and_the_cli(running: Running) -> None:
    for ref in ("junk-1", "junk-2", "junk-3"):
        url = f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&estado=DELIVRD&phone=34600111222&ref={ref}"
        assert (await running.client.get(url)).json()["status"] == "quarantined"
    first, second, third = [
        entry["id"] for entry in (await running.admin.get("/v1/quarantine")).json()["entries"]
    ]
    assert (await running.client.delete(f"/v1/quarantine/{first}")).status_code == 401
    dropped = await running.admin.delete(f"/v1/quarantine/{first}")
    assert (dropped.status_code, dropped.content) == (204, b"")
    assert (await running.admin.get(f"/v1/quarantine/{first}")).status_code == 404
    again = await running.admin.delete(f"/v1/quarantine/{first}")
    assert (again.status_code, again.json()["error"]) == (404, "not_found")

    def drop(*arguments: str) -> subprocess.CompletedProcess[str]:
        data_dir = str(running.config.data_dir)
        command = ["quarantine", "drop", *arguments, "--data-dir", data_dir]
        return subprocess.run(
            [sys.executable, "-m", "dlrhub", *command],
            capture_output=True,
            text=True,
            timeout=60,
        )

    nothing_resolved = await asyncio.to_thread(drop, "--all-resolved")
    assert (nothing_resolved.returncode, nothing_resolved.stdout) == (
        0,
        "dropped 0 quarantine entries\n",
    )
    named = await asyncio.to_thread(drop, str(second), str(first))
    assert named.returncode == 1
    assert named.stdout == "dropped 1 quarantine entry\n"
    assert named.stderr == f"no quarantine entry {first} (see 'dlrhub quarantine list')\n"
    usage = await asyncio.to_thread(drop)
    assert usage.returncode == 2
    remaining = (await running.admin.get("/v1/quarantine")).json()["entries"]
    assert [entry["id"] for entry in remaining] == [third]


async def test_admin_api_needs_the_bearer_token_and_checks_parameters(running: Running) -> None:
    assert (await running.client.get("/v1/events")).status_code == 401
    bad = await running.admin.get("/v1/events", params={"limit": "0"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_request"
    assert (await running.admin.get("/v1/events", params={"status": "nope"})).status_code == 400
    assert (await running.admin.get("/v1/events", params={"colour": "red"})).status_code == 400


async def test_health_readiness_and_metrics(running: Running) -> None:
    assert (await running.client.get("/healthz")).json() == {"status": "ok"}
    assert (await running.client.get("/readyz")).json()["status"] == "ready"
    await post_event(running, event_form("delivered"))
    await post_event(running, "id=x&channel=sms")  # no event: quarantined
    await running.client.post("/hooks/nrs360/events", params={"token": "bad"}, content="")
    text = (await running.client.get("/metrics")).text
    assert 'dlrhub_callbacks_total{kind="events",outcome="stored",source="nrs360"} 1.0' in text
    assert 'dlrhub_callbacks_total{kind="events",outcome="quarantined",source="nrs360"} 1.0' in text
    assert 'outcome="unauthorized"' in text
    assert "dlrhub_ingest_seconds_bucket" in text
    assert "dlrhub_commit_batch_size_count" in text
    assert "dlrhub_quarantine_pending 1.0" in text


async def test_openapi_describes_every_route(running: Running) -> None:
    document = (await running.client.get("/openapi.json")).json()
    from starlette.routing import Route

    from dlrhub.app import create_app
    from dlrhub.receiver.hooks import PATHS

    app_paths = set(PATHS)
    for route in create_app(running.config).routes:
        if route.path.startswith("/console"):
            continue  # the console's pages and files, not an API (its changes are /v1 routes)
        assert isinstance(route, Route)
        app_paths.add(route.path.replace(":path", "").replace(":int", ""))
    assert set(document["paths"]) == app_paths


async def test_an_unexpected_error_is_a_json_500_without_the_trace(
    running_in_process: Running, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses

    from dlrhub.providers import PROVIDERS

    running = running_in_process

    def broken(raw: object, options: object) -> list[object]:
        raise RuntimeError("boom in a normalizer")

    original = PROVIDERS["nrs360"]
    PROVIDERS["nrs360"] = dataclasses.replace(original, normalize=broken)  # type: ignore[index]
    try:
        answer = await post_event(running, event_form("delivered"))
    finally:
        PROVIDERS["nrs360"] = original  # type: ignore[index]
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "internal_error",
        "detail": "dlrhub hit an unexpected error; it is logged",
    }
    assert "boom" not in answer.text
    assert any("boom in a normalizer" in record.getMessage() for record in caplog.records)
    assert (await post_event(running, event_form("delivered"))).status_code == 200


def traces_of(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The log records that carry a traceback of an error whose text has `text`."""
    return [
        record
        for record in caplog.records
        if record.exc_info is not None and text in str(record.exc_info[1])
    ]


async def test_a_hooks_500_logs_the_trace_once(
    running_in_process: Running, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from dlrhub.providers import PROVIDERS

    def broken(raw: object, options: object) -> list[object]:
        raise RuntimeError("boom in a normalizer")

    broken_provider = dataclasses.replace(PROVIDERS["nrs360"], normalize=broken)
    monkeypatch.setitem(PROVIDERS, "nrs360", broken_provider)  # type: ignore[arg-type]
    answer = await post_event(running_in_process, event_form("delivered"))
    assert answer.status_code == 500
    (record,) = traces_of(caplog, "boom in a normalizer")
    assert record.name == "dlrhub.receiver.hooks"
    assert "POST /hooks/nrs360/events" in record.getMessage()


async def test_a_hooks_500_from_the_worker_logs_no_second_trace(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker logs the trace in its own process; the receiver says which request."""

    async def failing(raw: RawCallback) -> Ingested:
        raise IngestWorkerError("RuntimeError('boom in the worker')")

    async with (
        serve_app(Hooks(config, failing, Metrics()), lifespan="off") as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        answer = await client.post(
            "/hooks/nrs360/events", params=TOKEN, content=event_form("delivered"), headers=FORM
        )
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert traces_of(caplog, "boom in the worker") == []
    (record,) = [r for r in caplog.records if "boom in the worker" in r.getMessage()]
    assert record.name == "dlrhub.receiver.hooks" and record.levelno == logging.ERROR


async def test_an_api_500_logs_the_trace_once(
    running_in_process: Running, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette's handler answers and re-raises; the server logs the trace, the handler a line."""

    async def broken(self: object, query: object) -> list[object]:
        raise RuntimeError("boom in the store")

    monkeypatch.setattr(SQLiteStore, "events", broken)
    answer = await running_in_process.admin.get("/v1/events")
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal_error"
    assert "boom" not in answer.text
    assert len(traces_of(caplog, "boom in the store")) == 1
    assert any(
        r.name == "dlrhub.receiver.errors" and "GET /v1/events" in r.getMessage()
        for r in caplog.records
    )
