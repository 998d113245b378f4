"""`dlrhub sinks status|pause|resume`, `dlrhub replay`, `dlrhub dlq list|retry|drop`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from dlrhub.cli import main
from dlrhub.config import Config
from dlrhub.store import EventFilter
from tests.sinks.conftest import harness, ingest, make_events, sink_config

SINKS = '[[sinks]]\nname = "print"\nkind = "stdout"\n'


@pytest.fixture
def config(tmp_path: Path, store_toml: str) -> Config:
    config = sink_config(tmp_path, SINKS, store=store_toml)

    async def prepare() -> None:
        async with harness(config) as h:
            events = make_events(10)
            await ingest(h.store, events)
            await h.state.ensure("print", start_after=0)
            stored = await h.store.events(EventFilter(limit=3))
            await h.state.add_dead_letter("print", stored[2], "answered 400", 1)

    asyncio.run(prepare())
    return config


def run(config: Config, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--config", str(config.data_dir.parent / "dlrhub.toml")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_pause_resume(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(config, capsys, "sinks", "status")
    assert code == 0
    assert out.splitlines()[1].split()[:6] == ["print", "stdout", "ok", "10", "0s", "1"]
    assert run(config, capsys, "sinks", "pause", "print")[1] == "sink print paused\n"
    code, out, _ = run(config, capsys, "sinks", "status", "--json")
    report = orjson.loads(out)
    assert (report["state"], report["lag_events"], report["dead_letters"]) == ("paused", 10, 1)
    assert run(config, capsys, "sinks", "resume", "print")[1] == "sink print resumed\n"
    assert orjson.loads(run(config, capsys, "sinks", "status", "--json")[1])["state"] == "ok"


def test_status_clears_the_last_error_once_a_delivery_succeeds(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    failed_at = datetime.now(UTC)

    async def record(what: str) -> None:
        async with harness(config) as h:
            if what == "error":
                await h.state.record_error("print", "answered 503", failed_at)
            else:
                await h.state.count_delivered("print", 1, failed_at + timedelta(seconds=1))

    asyncio.run(record("error"))
    out = run(config, capsys, "sinks", "status")[1]
    assert out.splitlines()[1].split()[2:3] == ["failing"]
    assert out.splitlines()[1].endswith("  answered 503")
    asyncio.run(record("delivery"))
    out = run(config, capsys, "sinks", "status")[1]
    assert out.splitlines()[1].split()[2:3] == ["ok"]
    assert out.splitlines()[1].endswith("  -")
    report = orjson.loads(run(config, capsys, "sinks", "status", "--json")[1])
    assert (report["last_error"], report["last_error_at"]) == (None, None)


def test_unknown_sink_is_a_one_line_usage_error(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(config, capsys, "sinks", "pause", "nope")
    assert code == 2
    assert err == "dlrhub: no sink named 'nope' (sinks: print)\n"


def test_replay_queues_a_range(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(config, capsys, "replay", "print", "--after-seq", "3")
    assert code == 0 and out.startswith("replay 1 queued: events 4..10 to sink print")
    code, out, _ = run(config, capsys, "replay", "print", "--since", "1h", "--until-seq", "5")
    assert out.startswith("replay 2 queued: events 1..5")
    code, out, _ = run(config, capsys, "replay", "print", "--since", "2999-01-01T00:00:00Z")
    assert out == "nothing to replay: no events in that range\n"
    code, _, err = run(config, capsys, "replay", "print", "--since", "yesterday")
    assert code == 2 and "neither a time" in err


def test_dlq_list_retry_drop(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run(config, capsys, "dlq", "list", "print", "--json")
    letter = orjson.loads(out)
    assert (letter["id"], letter["seq"], letter["state"], letter["error"]) == (
        1, 3, "dead", "answered 400",
    )  # fmt: skip
    assert run(config, capsys, "dlq", "retry", "print", "--all")[1].startswith("1 dead letter")
    assert orjson.loads(run(config, capsys, "dlq", "list", "print", "--json")[1])["state"] == (
        "retry"
    )
    assert run(config, capsys, "dlq", "retry", "print")[0] == 2  # neither ids nor --all
    assert run(config, capsys, "dlq", "drop", "print", "1")[1].startswith("1 dead letter")
    assert run(config, capsys, "dlq", "list", "print")[1] == "no dead letters for sink print\n"
    assert run(config, capsys, "dlq", "list", "print", "--json")[1] == ""


def test_new_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sinks", "new-secret"]) == 0
    assert capsys.readouterr().out.startswith("whsec_")


def test_new_secrets_make_a_rolling_pair_check_config_accepts(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}

    def dlrhub(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dlrhub", *argv]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)

    old, new = (dlrhub("sinks", "new-secret").stdout.strip() for _ in range(2))
    assert old != new and old.startswith("whsec_") and new.startswith("whsec_")
    config = tmp_path / "dlrhub.toml"
    config.write_text(
        '[[sinks]]\nname = "hook"\nkind = "webhook"\nurl = "https://consumer.example/dlr"\n'
        f'secret = ["{old}", "{new}"]\nheaders_style = "both"\n',
        encoding="utf-8",
    )
    checked = dlrhub("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    env["DLRHUB_SINKS__HOOK__SECRET"] = f"{new},{old}"  # the same pair from one variable
    checked = dlrhub("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert old not in checked.stdout + checked.stderr and new not in checked.stdout
