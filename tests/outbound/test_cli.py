"""`dlrhub send`, `track`, `poll --once`, `poll status`, `poll resume` against a fake."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from dlrhub.cli import main as cli_main
from dlrhub.providers.onurix.fake import FakeOnurix
from dlrhub.testing.faults import Fault


def write_config(directory: Path, base: str, fake: FakeOnurix, key: str | None = None) -> Path:
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"

[poller]
first_interval = "1ms"
jitter = 0

[[accounts]]
name = "onx"
provider = "onurix"
base_url = "{base}/api/v1"
client = "{fake.client}"
key = "{key or fake.key}"
backoff = "1ms"
rate_limit = 0
""",
        encoding="utf-8",
    )
    return path


async def test_send_track_poll_and_status_from_the_command_line(
    tmp_path: Path, onurix: tuple[FakeOnurix, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = onurix
    fake.progression = ("Entregado",)
    config = str(write_config(tmp_path, base, fake))

    async def run(*arguments: str) -> int:
        return await asyncio.to_thread(cli_main, [*arguments, "--config", config])

    assert (
        await run(
            "send", "--account", "onx", "--to", "573150123456", "--text", "Hola", "--ref", "cli-1"
        )
        == 0
    )
    assert "accepted" in capsys.readouterr().out
    other = fake.add_message("573150000000")
    assert await run("track", "--account", "onx", "--message-id", other.id) == 0
    assert "tracking 1 new" in capsys.readouterr().out
    await asyncio.sleep(0.01)
    assert await run("poll", "--once") == 0
    assert "polled 2 due" in capsys.readouterr().out
    assert await run("poll", "status", "--json") == 0
    (status,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status["account"] == "onx" and status["stopped"] == {"final_status": 2}
    assert status["paused"] is None
    assert await run("poll", "resume", "onx") == 1
    assert "is not paused" in capsys.readouterr().err
    assert await run("send", "--account", "nobody", "--to", "1", "--text", "x") == 2
    assert "no account named 'nobody'" in capsys.readouterr().err


async def test_a_refused_key_is_one_line_and_pauses_polling(
    tmp_path: Path, onurix: tuple[FakeOnurix, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = onurix
    fake.refuse_credentials_with = 401  # the document shows 520; this is the 401 mode
    config = str(write_config(tmp_path, base, fake, key="wrong-key-0123"))

    async def run(*arguments: str) -> int:
        return await asyncio.to_thread(cli_main, [*arguments, "--config", config])

    assert await run("send", "--account", "onx", "--to", "573150123456", "--text", "x") == 1
    error = capsys.readouterr().err
    assert error.startswith("dlrhub: provider_auth_failed") and len(error.splitlines()) == 1
    assert "wrong-key-0123" not in error
    assert await run("track", "--account", "onx", "--message-id", "msg-1") == 0
    assert await run("poll", "--once") == 0
    capsys.readouterr()
    assert await run("poll", "status") == 0
    assert "onx: PAUSED until" in capsys.readouterr().out
    assert await run("poll", "resume", "onx") == 0


async def test_poll_status_shows_malformed_answers_on_the_account(
    tmp_path: Path, onurix: tuple[FakeOnurix, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, base = onurix
    config = str(write_config(tmp_path, base, fake))

    async def run(*arguments: str) -> int:
        return await asyncio.to_thread(cli_main, [*arguments, "--config", config])

    message = fake.add_message("573150000000")
    assert await run("track", "--account", "onx", "--message-id", message.id) == 0
    fake.inject(Fault("malformed", "/api/v1/messages-state"))
    await asyncio.sleep(0.01)
    assert await run("poll", "--once") == 0
    capsys.readouterr()
    assert await run("poll", "status") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("onx: active;") and "bad answers: 1, last at " in line
    assert await run("poll", "status", "--json") == 0
    (status,) = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status["bad_answers"]["count"] == 1 and status["bad_answers"]["last_error"]
    assert status["stopped"] == {}  # a malformed answer is no verdict on the message
