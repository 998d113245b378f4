"""`[[sources]] provider = "twilio"`: its credential is `auth_token`, never `token`."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub.cli import main as cli_main
from dlrhub.config import ConfigError, load_config
from dlrhub.event import Status

AUTH_TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "dlrhub.toml"
    path.write_text(f"[[sources]]\nname = 'tw'\nprovider = 'Twilio'\n{source}\n", encoding="utf-8")
    return path


def test_a_twilio_source_with_its_auth_token(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"auth_token = '{AUTH_TOKEN}'\ntimezone = 'America/New_York'\n"
        "allow_ips = ['203.0.113.0/24']\n"
        "status_map = { partially_delivered = 'delivered', Canceled = 'rejected' }",
    )
    (source,) = load_config(path, env={}).sources
    assert (source.name, source.provider, source.token) == ("tw", "twilio", AUTH_TOKEN)
    assert source.options.timezone == "America/New_York"
    assert source.options.status_map == {
        "partially_delivered": Status.DELIVERED,
        "canceled": Status.REJECTED,
    }
    assert source.allows("203.0.113.7") and not source.allows("198.51.100.1")


def test_the_auth_token_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    env = {"DLRHUB_SOURCES__TW__AUTH_TOKEN": AUTH_TOKEN}
    (source,) = load_config(path, env=env).sources
    assert source.token == AUTH_TOKEN


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "sources[0].auth_token: is required"),
        (f"token = '{AUTH_TOKEN}'", "sources[0].token: unknown key"),
        (f"auth_token = '{AUTH_TOKEN}'\ntoken = '{AUTH_TOKEN}'", "sources[0].token: unknown key"),
        ("auth_token = 'short'", "sources[0].auth_token: must be 16 or more"),
        (f"auth_token = '{AUTH_TOKEN}'\ndlr_params = {{ status = 's' }}", "dlr_params: unknown"),
        (f"auth_token = '{AUTH_TOKEN}'\ndlr_plus_as_space = true", "dlr_plus_as_space: unknown"),
        (
            f"auth_token = '{AUTH_TOKEN}'\nstatus_map = {{ read = 'seen' }}",
            "'seen' is not a status",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, source), env={})
    assert message in str(error.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(_mkdir(tmp_path / "good"), f"auth_token = '{AUTH_TOKEN}'")
    assert cli_main(["check-config", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "configuration is valid" in out
    assert "source tw: provider twilio" in out
    assert AUTH_TOKEN not in out

    missing = write(_mkdir(tmp_path / "missing"), "")
    assert cli_main(["check-config", "--config", str(missing)]) == 2
    assert "sources[0].auth_token: is required" in capsys.readouterr().err

    token = write(_mkdir(tmp_path / "token"), f"token = '{AUTH_TOKEN}'")
    assert cli_main(["check-config", "--config", str(token)]) == 2
    err = capsys.readouterr().err
    assert "sources[0].token: unknown key" in err
    assert AUTH_TOKEN not in err


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
