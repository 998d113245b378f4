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
from dlrhub.commands.receiver import describe_endpoints
from dlrhub.config import load_config
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
        assert f" listening on http://127.0.0.1:{port} (store: " in banner
        assert "Public URL: not set (server.public_url)" in banner
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
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "SEQ", "RECEIVED", "SOURCE", "PROVIDER", "TYPE", "STATUS", "MESSAGE", "RECIPIENT",
        "PROVIDER", "STATUS",
    ]  # fmt: skip
    assert row.split()[2:7] == ["nrs360", "nrs360", "message.status", "delivered", "order-1"]
    assert header.index("STATUS") == row.index("delivered")  # the columns line up


async def test_the_zero_config_source_takes_environment_variables_without_a_file(
    tmp_path: Path,
) -> None:
    adjust = {
        "DLRHUB_SOURCES__NRS360__DLR_PARAMS__REF": "customId",
        "DLRHUB_SOURCES__NRS360__DLR_PARAMS__STATUS": "estado",
    }
    checked = await run_dlrhub("check-config", cwd=tmp_path, env=adjust)
    assert checked.returncode == 0, checked.stderr
    assert "will create the 360NRS source 'nrs360', with dlr_params from the environment" in (
        checked.stdout
    )
    async with (
        dlrhub_serve(log_dir=tmp_path, cwd=tmp_path, env=adjust) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        banner = server.output()
        assert "&estado=%d&" in banner and "&customId=<your-ref>" in banner
        token = (tmp_path / "dlrhub-data" / "source-nrs360.token").read_text().strip()
        assert f"/hooks/nrs360/dlr?token={token}&" in banner  # generated: shown this once
        stored = await client.get(
            f"/hooks/nrs360/dlr?token={token}&estado=1&phone=34600111222&customId=order-9"
        )
        assert stored.json()["status"] == "stored", stored.text
        admin = (tmp_path / "dlrhub-data" / "admin.token").read_text().strip()
        message = await client.get(
            "/v1/messages/nrs360/order-9", headers={"Authorization": f"Bearer {admin}"}
        )
        assert message.json()["message"]["status"] == "delivered"

    wrong = await run_dlrhub(
        "check-config", cwd=tmp_path, env={"DLRHUB_SOURCES__NRS360__DLR_PARAMS__REFF": "x"}
    )
    assert wrong.returncode == 2
    assert "sources[0].dlr_params.reff: unknown key" in wrong.stderr
    # Naming a provider declares a source of its own, which then needs its token.
    declared = await run_dlrhub(
        "check-config", cwd=tmp_path, env={"DLRHUB_SOURCES__NRS360__PROVIDER": "360nrs"}
    )
    assert declared.returncode == 2
    assert "sources[0].token: is required" in declared.stderr


async def test_a_generated_token_is_printed_by_the_start_that_made_it_and_never_again(
    tmp_path: Path,
) -> None:
    data = tmp_path / "dlrhub-data"
    async with dlrhub_serve(log_dir=tmp_path, name="first", cwd=tmp_path) as first:
        source_token = (data / "source-nrs360.token").read_text(encoding="utf-8").strip()
        admin_token = (data / "admin.token").read_text(encoding="utf-8").strip()
        assert f"/hooks/nrs360/events?token={source_token}\n" in first.output()
        assert f"Admin token (generated, kept in dlrhub-data/admin.token):\n  {admin_token}\n" in (
            first.output()
        )
    async with (
        dlrhub_serve(log_dir=tmp_path, name="second", cwd=tmp_path) as second,
        httpx.AsyncClient(base_url=second.base_url) as client,
    ):
        banner = second.output()
        hook = f"{second.base_url}/hooks/nrs360"
        assert f"{hook}/events?token=<see dlrhub-data/source-nrs360.token>\n" in banner
        assert f"{hook}/dlr?token=<see dlrhub-data/source-nrs360.token>&status=%d" in banner
        assert "Bearer <admin token, in dlrhub-data/admin.token>" in banner
        # The tokens still work (and the access log of these requests hides them).
        stored = await client.get(f"/hooks/nrs360/dlr?token={source_token}&status=1&ref=r-1")
        assert stored.status_code == 200, stored.text
        listed = await client.get("/v1/events", headers={"Authorization": f"Bearer {admin_token}"})
        assert len(listed.json()["events"]) == 1
    output = second.output()  # everything it wrote, stdout and stderr, up to its exit
    assert "GET /v1/events" in output
    assert source_token not in output and admin_token not in output


def test_a_configured_token_is_never_printed(tmp_path: Path) -> None:
    source_token, admin_token = "Vq3-kD8_mZt2xLw9PbN4", "Hn7_qW2-rT5yU8iO1pAs"
    path = tmp_path / "dlrhub.toml"
    path.write_text(
        f"admin_token = '{admin_token}'\n[[sources]]\nname = 'shop'\nprovider = '360nrs'\n"
        f"token = '{source_token}'\n[[sources]]\nname = 'gw'\nprovider = 'kannel'\n",
        encoding="utf-8",
    )
    config = load_config(path, env={"DLRHUB_SOURCES__GW__TOKEN": "Zx8-cV3_bN6mL9kJ2hGf"})
    banner = describe_endpoints(config, [], {})
    assert "/hooks/shop/events?token=<your token from the configuration>\n" in banner
    assert "/hooks/gw/dlr?token=<your token from the configuration>&" in banner
    assert "Bearer <admin_token from the configuration>" in banner
    for token in (source_token, admin_token, "Zx8-cV3_bN6mL9kJ2hGf"):
        assert token not in banner


def test_the_banner_says_the_bound_address_and_separately_the_public_url(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dlrhub.toml"
    path.write_text(
        "[server]\nhost = '::'\nport = 8081\npublic_url = 'https://dlr.example.com'\n"
        "[[sources]]\nname = 'shop'\nprovider = '360nrs'\ntoken = 'Vq3-kD8_mZt2xLw9PbN4'\n",
        encoding="utf-8",
    )
    lines = describe_endpoints(load_config(path, env={}), [], {}).splitlines()
    assert " listening on http://[::]:8081 (store: " in lines[0]
    assert lines[1] == "Public URL (what providers call): https://dlr.example.com"
    hooks = [line.strip() for line in lines if "/hooks/" in line]
    assert hooks and all(line.startswith("https://dlr.example.com/hooks/shop/") for line in hooks)


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
