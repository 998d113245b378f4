"""The `dlrhub` command as a user runs it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from dlrhub.cli import main as cli_main
from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.store import Accept, SQLiteStore
from tests.processes import dlrhub_serve, run_dlrhub


def test_help_on_every_command() -> None:
    for arguments in (
        ["--help"],
        ["serve", "--help"],
        ["events", "--help"],
        ["quarantine", "--help"],
        ["quarantine", "reprocess", "--help"],
        ["check-config", "--help"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "dlrhub", *arguments], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "usage: dlrhub" in result.stdout


async def test_zero_config_serve_prints_urls_that_work_then_events_lists_them(
    tmp_path: Path,
) -> None:
    async with (
        dlrhub_serve(log_dir=tmp_path, cwd=tmp_path) as server,
        httpx.AsyncClient() as client,
    ):
        banner = server.output()
        port = server.port
        events_url = re.search(r"(http://\S+/hooks/nrs360/events\?token=\S+)", banner)
        dlr_url = re.search(r"(http://\S+/hooks/nrs360/dlr\?\S+)", banner)
        admin = banner.split("Admin token", 1)[1].splitlines()[1].strip()
        assert events_url and dlr_url
        assert (tmp_path / "dlrhub-data" / "dlrhub.sqlite3").exists()
        # What 360NRS would do with the printed template.
        url = dlr_url.group(1).replace("%d", "1").replace("%P", "34600111222")
        url = url.replace("%p", "SHOP").replace("<your-ref>", "order-1")
        assert (await client.get(url)).status_code == 200
        posted = await client.post(
            events_url.group(1),
            content="id=abc&event=delivered&channel=sms",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert posted.status_code == 200
        answer = await client.get(
            f"http://127.0.0.1:{port}/v1/events", headers={"Authorization": f"Bearer {admin}"}
        )
        assert len(answer.json()["events"]) == 2
    listing = await run_dlrhub("events", "--json", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = [orjson.loads(line) for line in listing.stdout.splitlines()]
    assert [(r["correlation_id"], r["status"]) for r in rows] == [
        ("order-1", "delivered"),
        (None, "delivered"),
    ]
    table = await run_dlrhub("events", "--status", "delivered", "--limit", "1", cwd=tmp_path)
    assert len(table.stdout.splitlines()) == 1
    assert "order-1" in table.stdout


def test_commands_on_a_missing_store_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(tmp_path / "empty")
    assert cli_main(["events", "--data-dir", data_dir]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dlrhub: no store at") and err.count("\n") == 1
    assert cli_main(["quarantine", "show", "3", "--data-dir", data_dir]) == 1
    assert cli_main(["quarantine", "reprocess", "--data-dir", data_dir]) == 2


async def test_events_follow_prints_new_events_as_they_are_stored(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "dlrhub-data" / "dlrhub.sqlite3")
    await store.open()
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dlrhub",
        "events",
        "--follow",
        "--json",
        "--data-dir",
        str(tmp_path / "dlrhub-data"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        now = datetime.now(UTC)
        for index in range(3):
            raw = RawCallback("s", "nrs360", "dlr", "GET", f"n={index}", "", b"", now)
            event = Event(
                id=f"e{index}",
                source="s",
                provider="nrs360",
                type=EventType.MESSAGE_STATUS,
                received_at=now,
                status=Status.SENT,
            )
            await store.write(Accept(raw, [event]))
            assert follower.stdout is not None
            line = await asyncio.wait_for(follower.stdout.readline(), 10)
            assert orjson.loads(line)["id"] == f"e{index}"
    finally:
        follower.terminate()
        await follower.wait()
        await store.close()
