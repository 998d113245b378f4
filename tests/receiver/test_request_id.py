"""The request id and the access line: from `X-Request-Id` (when sane) to the answer, the
access line, the stored event's `extra` and the sink's delivery line; json log lines.

`dlrhub serve` runs as users run it (ingest worker, a sink delivering) with
`log_format = "json"`, so every line after its banner must be a JSON object.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from dlrhub.config import load_config
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN, run_app, write_config
from tests.processes import dlrhub_serve
from tests.waiting import eventually_async

GENERATED = re.compile(r"[0-9a-f]{16}")
GIVEN = "lb-7f3a.9:req_01-x"
INSANE: dict[str, str | bytes] = {
    "too_long": "a" * 129,
    "space": "two words",
    "semicolon": "a;b",
    "non_ascii": "caf\u00e9".encode(),
    "holds_a_token": f"id-{SOURCE_TOKEN}",
    "holds_the_admin_token": ADMIN_TOKEN,
}


def json_log(output: str, banner: str) -> list[dict[str, Any]]:
    """Every line after the banner, each of which must be a JSON object."""
    lines = []
    for line in output.removeprefix(banner).splitlines():
        if line.strip():
            parsed = json.loads(line)  # fails the test on a line that is not JSON
            assert isinstance(parsed, dict)
            assert {"ts", "level", "logger", "message", "pid"} <= parsed.keys()
            lines.append(parsed)
    return lines


async def test_a_callback_request_id_reaches_the_answer_log_event_and_sink(
    tmp_path: Path,
) -> None:
    out = tmp_path / "events.jsonl"
    path = write_config(tmp_path, f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{out}"\n')
    path.write_text('log_level = "debug"\nlog_format = "json"\n' + path.read_text())
    async with (
        dlrhub_serve("--config", str(path), log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        banner = server.output()
        params = {"token": SOURCE_TOKEN, "status": "1", "ref": "o-1", "api_key": "k-0123456789"}
        given = {"X-Request-Id": GIVEN}
        first = await client.get("/hooks/nrs360/dlr", params=params, headers=given)
        assert first.json()["duplicate"] is False, first.text
        assert first.headers["x-request-id"] == GIVEN
        retry = await client.get(
            "/hooks/nrs360/dlr", params=params, headers={"X-Request-Id": "provider-retry"}
        )
        assert retry.json()["duplicate"] is True  # whatever its request id
        assert retry.headers["x-request-id"] == "provider-retry"
        unnamed = await client.get("/healthz")
        assert GENERATED.fullmatch(unnamed.headers["x-request-id"])
        replaced = {}
        for case, insane in INSANE.items():
            answer = await client.get("/healthz", headers={"X-Request-Id": insane})
            replaced[case] = answer.headers["x-request-id"]
        answered = [GIVEN, "provider-retry", unnamed.headers["x-request-id"], *replaced.values()]
        await eventually_async(
            lambda: out.exists() and len(out.read_bytes().splitlines()) == 1,
            30,
            "the sink to deliver the event",
        )
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        events = await client.get("/v1/events", headers=admin)
        (stored,) = events.json()["events"]
        answered.append(events.headers["x-request-id"])
        await server.stop()

    assert {case: GENERATED.fullmatch(value) is not None for case, value in replaced.items()} == (
        dict.fromkeys(INSANE, True)
    )
    assert stored["extra"]["request_id"] == GIVEN  # the first one: the retry was a duplicate
    (delivered,) = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert delivered["extra"]["request_id"] == GIVEN

    lines = json_log(server.output(), banner)
    every = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    (started,) = [line for line in every if line["message"].startswith("ingest worker started")]
    worker = int(re.findall(r"\d+", started["message"])[0])
    assert {line["pid"] for line in every} == {started["pid"], worker}  # the worker's in json too
    access = [line for line in lines if line["logger"] == "dlrhub.access"]
    (callback,) = [line for line in access if line["request_id"] == GIVEN]
    assert callback["method"] == "GET"
    assert callback["path"].startswith("/hooks/nrs360/dlr?token=[REDACTED]&status=1&ref=o-1")
    assert "api_key=[REDACTED]" in callback["path"]
    assert (callback["status"], callback["source"]) == (200, "nrs360")
    assert callback["bytes"] > 0 and callback["duration_ms"] >= 0
    assert callback["remote_addr"] == "127.0.0.1"
    logged = [line["request_id"] for line in access]
    assert {id: logged.count(id) for id in answered} == dict.fromkeys(answered, 1)
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    deliveries = [line for line in lines if line.get("sink") == "file" and "outcome" in line]
    (delivery,) = [line for line in deliveries if line["outcome"] == "delivered"]
    assert delivery["request_ids"] == [GIVEN] and delivery["request_id"] == GIVEN
    assert (delivery["event_id"], delivery["seq"]) == (stored["id"], stored["seq"])
    assert delivery["attempt"] == 1 and delivery["level"] == "DEBUG"
    text = json.dumps(lines, ensure_ascii=False)
    for secret in (SOURCE_TOKEN, ADMIN_TOKEN, "k-0123456789"):
        assert secret not in text
        assert secret not in server.output().removeprefix(banner)


@pytest.mark.parametrize("access_log", [True, False], ids=["access_log", "no_access_log"])
async def test_server_access_log_false_switches_the_line_off_not_the_request_id(
    tmp_path: Path, access_log: bool, caplog: pytest.LogCaptureFixture
) -> None:
    extra = f"[server]\naccess_log = {str(access_log).lower()}\n"
    config = load_config(write_config(tmp_path, extra=extra), env={})
    caplog.set_level(logging.INFO)
    async with run_app(config, ingest_worker=False) as running:
        answer = await running.client.get(
            "/hooks/nrs360/dlr",
            params={"token": SOURCE_TOKEN, "status": "1", "ref": "o-2"},
            headers={"X-Request-Id": GIVEN},
        )
        assert answer.headers["x-request-id"] == GIVEN
    lines = [record for record in caplog.records if record.name == "dlrhub.access"]
    assert len(lines) == (1 if access_log else 0)
    assert not [record for record in caplog.records if record.name == "uvicorn.access"]
