"""Configuration: file, environment overrides, and errors that name the key."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlrhub.cli import main as cli_main
from dlrhub.config import ConfigError, ConfigErrors, load_config
from dlrhub.event import Status
from dlrhub.first_start import prepare

TOKEN = "abcdefghijklmnop0123"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dlrhub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_configuration_gives_the_documented_defaults() -> None:
    config = load_config(None, env={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.data_dir == Path("dlrhub-data")
    assert config.sqlite_path == Path("dlrhub-data/dlrhub.sqlite3")
    assert config.server.max_body_bytes == 65536
    assert config.sources == ()


def test_a_full_source_reads_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[sources]]
name = "shop"
provider = "360nrs"
token = "{TOKEN}"
allow_ips = ["203.0.113.0/24", "2001:db8::/32"]
timezone = "Europe/Madrid"
dlr_plus_as_space = true
dlr_params = {{ ref = "customId" }}
status_map = {{ "3" = "delivered", "ENTREGADO" = "Delivered" }}
""",
    )
    (source,) = load_config(path, env={}).sources
    assert source.provider == "nrs360"
    assert source.options.dlr_params["ref"] == "customId"
    assert source.options.dlr_params["status"] == "status"
    assert source.options.status_map == {"3": Status.DELIVERED, "entregado": Status.DELIVERED}
    assert source.allows("203.0.113.9") and source.allows("2001:db8::1")
    assert not source.allows("198.51.100.1") and not source.allows(None)
    assert source.allow_ips[0] == ipaddress.ip_network("203.0.113.0/24")


def test_environment_overrides_file_keys_and_sources_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'data_dir = "/from/file"\n[[sources]]\nname = "nrs-main"\nprovider = "360nrs"\n'
        f'token = "{TOKEN}"\n',
    )
    env = {
        "DLRHUB_DATA_DIR": "/from/env",
        "DLRHUB_SERVER__PORT": "9090",
        "DLRHUB_SERVER__ACCESS_LOG": "false",
        "DLRHUB_SOURCES__NRS_MAIN__ALLOW_IPS": "10.0.0.0/8, 192.0.2.1",
        "DLRHUB_SOURCES__NRS_MAIN__DLR_PARAMS__REF": "customId",
        "DLRHUB_SOURCES__OTHER__PROVIDER": "360nrs",
        "DLRHUB_SOURCES__OTHER__TOKEN": TOKEN + "x",
        "UNRELATED": "1",
    }
    config = load_config(path, env=env)
    assert config.data_dir == Path("/from/env")
    assert config.server.port == 9090
    assert config.server.access_log is False
    main, other = config.sources
    assert len(main.allow_ips) == 2
    assert main.options.dlr_params["ref"] == "customId"
    assert (other.name, other.token) == ("other", TOKEN + "x")


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 7000\n")
    assert load_config(None, env={"DLRHUB_CONFIG": str(path)}).server.port == 7000


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[server]\nport = 70000\n", {}, "server.port: must be a port number"),
        ("[server]\nport = 'x'\n", {}, "server.port: must be a whole number"),
        ("", {"DLRHUB_SERVER__PORT": "eighty"}, "server.port: must be a whole number"),
        ("[server]\ncolour = 1\n", {}, "server.colour: unknown key"),
        ("[[sources]]\nprovider = '360nrs'\n", {}, "sources[0].name: is required"),
        (
            f"[[sources]]\nname = 'a'\nprovider = 'carrier-pigeon'\ntoken = '{TOKEN}'\n",
            {},
            "sources[0].provider: 'carrier-pigeon' is not a known provider",
        ),
        (
            f"[[sources]]\nname = 'a'\nprovider = 'onurix'\ntoken = '{TOKEN}'\n",
            {},
            "sources[0].provider: 'onurix' is not a known provider that pushes callbacks",
        ),
        ("[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = 'short'\n", {}, "sources[0].token"),
        (
            f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n"
            "allow_ips = ['10.0.0.0/8', '10.0.0.300/8']\n",
            {},
            "sources[0].allow_ips[1]: '10.0.0.300/8' is not an IP address or CIDR network",
        ),
        (
            f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n"
            "status_map = { '3' = 'gone' }\n",
            {},
            "sources[0].status_map.3: 'gone' is not a status",
        ),
        (
            f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n"
            "timezone = 'Mars/Olympus'\n",
            {},
            "sources[0].timezone",
        ),
        (
            f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n"
            f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n",
            {},
            "sources[1].name: 'a' is used by another source",
        ),
        ("data_dir = [1\n", {}, "is not valid TOML"),
        ("[store]\nbackend = 'oracle'\n", {}, "store.backend"),
        ("[store]\nbackend = 'postgres'\n", {}, "store.dsn: is required"),
        (
            "[store]\nbackend = 'postgres'\ndsn = 'postgresql://h/db'\nschema = 'a; drop'\n",
            {},
            "store.schema",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), env=env)
    assert message in str(error.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, f"[[sources]]\nname = 'a'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n")
    assert cli_main(["check-config", "--config", str(good)]) == 0
    assert "configuration is valid" in capsys.readouterr().out
    bad = write(tmp_path, "[server]\nport = -1\n")
    assert cli_main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dlrhub: configuration error: server.port:")
    assert "Traceback" not in err
    missing = tmp_path / "nope.toml"
    assert cli_main(["check-config", "--config", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


WEAK_TOKENS = [
    pytest.param("Ab3-x9_Kq2", "must be 16 or more URL-safe characters", id="short"),
    pytest.param(
        "aaaaaaaaaaaaaaaaaaaaaaaa", "must have 8 or more different characters", id="one-character"
    ),
    pytest.param(
        "abc1234abc1234abc1234", "must have 8 or more different characters", id="seven-characters"
    ),
    pytest.param("replace-with-a-long-random-token", "is the example's placeholder", id="deploy"),
    pytest.param("a-long-random-url-safe-token", "is the example's placeholder", id="readme"),
    pytest.param("Your-Account-Auth-Token", "is the example's placeholder", id="twilio-docs"),
]


@pytest.mark.parametrize(("token", "problem"), WEAK_TOKENS)
def test_a_weak_token_is_refused_wherever_it_is_set_and_never_echoed(
    tmp_path: Path, token: str, problem: str
) -> None:
    files = {
        "sources[0].token": f"[[sources]]\nname = 'shop'\nprovider = '360nrs'\ntoken = '{token}'\n",
        "sources[0].auth_token": (
            f"[[sources]]\nname = 'sms'\nprovider = 'twilio'\nauth_token = '{token}'\n"
        ),
        "admin_token": f"admin_token = '{token}'\n",
    }
    for key, text in files.items():
        with pytest.raises(ConfigError) as error:
            load_config(write(tmp_path, text), env={})
        assert str(error.value).startswith(f"{key}: {problem}")
        assert token not in str(error.value)
    variables = {"DLRHUB_ADMIN_TOKEN": "admin_token", "DLRHUB_SOURCES__SHOP__TOKEN": "sources[0]"}
    for variable, key in variables.items():
        env = {"DLRHUB_SOURCES__SHOP__PROVIDER": "360nrs", "DLRHUB_SOURCES__SHOP__TOKEN": TOKEN}
        with pytest.raises(ConfigError) as error:
            load_config(None, env={**env, variable: token})
        assert str(error.value).startswith(key) and f"(from {variable})" in str(error.value)
        assert token not in str(error.value)


def test_a_weak_token_in_a_token_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin.token").write_text("secretsecretsecret\n", encoding="utf-8")
    config = load_config(None, env={"DLRHUB_DATA_DIR": str(tmp_path / "data")})
    with pytest.raises(ConfigError) as error:
        prepare(config)
    assert "admin.token: must have 8 or more different characters" in str(error.value)
    assert "secretsecret" not in str(error.value)


def test_check_config_refuses_the_example_configuration_until_its_token_is_replaced(
    tmp_path: Path,
) -> None:
    example = Path(__file__).resolve().parents[1] / "deploy" / "dlrhub.toml.example"
    argv = [sys.executable, "-m", "dlrhub", "check-config", "--config", str(example)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "dlrhub: configuration error: sources[0].token: is the example's placeholder;"
        " replace it with a random one: python -c 'import secrets;"
        " print(secrets.token_urlsafe(24))'"
    ]
    assert "replace-with-a-long-random-token" not in refused.stdout + refused.stderr
    env["DLRHUB_SOURCES__NRS360__TOKEN"] = "Vq3-kD8_mZt2xLw9PbN4"
    accepted = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert "configuration is valid" in accepted.stdout


MANY_ERRORS = f"""
log_level = "loud"

[server]
port = 70000
public_url = "ftp://dlr.example.com"

[[sources]]
name = "shop"
provider = "360nrs"
token = "{TOKEN}"
allow_ips = ["10.0.0.0/8", "10.0.0.300/8"]

[[sinks]]
name = "log"
kind = "stdout"

[[sinks]]
name = "hook"
kind = "webhook"
url = "https://consumer.example/dlr"
batch_size = 0
colour = "red"

[poller]
jitter = 2
"""


def test_every_error_in_a_file_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, MANY_ERRORS), env={})
    assert str(error.value).splitlines() == [
        "log_level: 'loud' is not 'debug', 'info', 'warning' or 'error'",
        "server.port: must be a port number from 0 to 65535, not 70000",
        "server.public_url: 'ftp://dlr.example.com' is not an http(s) URL",
        "sources[0].allow_ips[1]: '10.0.0.300/8' is not an IP address or CIDR network",
        "sinks[1].batch_size: must be greater than 0, not 0",
        "sinks[1].colour: unknown key (expected one of allow_private, batch_size, filter,"
        " headers, headers_style, kind, max_in_flight, name, on_4xx, record_attempts, retry,"
        " secret, start, timeout, url)",
        "sinks[1].secret: is required: 'whsec_' + base64 (make one: dlrhub sinks new-secret)",
        "poller.jitter: must be from 0 to below 1 (a fraction)",
    ]


def test_an_error_in_a_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, f"[[sources]]\nname = 'shop'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n")
    env = {
        "DLRHUB_SERVER__PORT": "eighty",
        "DLRHUB_SOURCES__SHOP__ALLOW_IPS": "10.0.0.0/8,10.0.0.300",
        "DLRHUB_SOURCES__OTHER__PROVIDER": "360nrs",
        "DLRHUB_SOURCES__OTHER__TOKEN": "short",
        "DLRHUB_STORE__MAX_BATCH__SIZE": "1",
    }
    with pytest.raises(ConfigError) as error:
        load_config(path, env=env)
    assert str(error.value).splitlines() == [  # the file's keys, then the ones variables added
        "sources[0].allow_ips[1]: '10.0.0.300' is not an IP address or CIDR network"
        " (from DLRHUB_SOURCES__SHOP__ALLOW_IPS)",
        "sources[1].token: must be 16 or more URL-safe characters"
        " (letters, digits, '.', '_', '~', '-') (from DLRHUB_SOURCES__OTHER__TOKEN)",
        "server.port: must be a whole number, not 'eighty' (from DLRHUB_SERVER__PORT)",
        "store.max_batch: must be a whole number, not {'size': '1'}"
        " (from DLRHUB_STORE__MAX_BATCH__SIZE)",
    ]


def test_a_variable_that_cannot_be_applied_is_reported_with_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 80\n[store]\nbackend = 'oracle'\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={"DLRHUB_SERVER__PORT__NUMBER": "81"})
    assert str(error.value).splitlines() == [
        "server.port.number: conflicts with a value that is not a table"
        " (from DLRHUB_SERVER__PORT__NUMBER)",
        "store.backend: 'oracle' is not 'sqlite' or 'postgres'",
    ]


def test_check_config_prints_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, MANY_ERRORS)
    assert cli_main(["check-config", "--config", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 8
    assert all(line.startswith("dlrhub: configuration error: ") for line in lines)
    assert lines[1] == (
        "dlrhub: configuration error: server.port: must be a port number from 0 to 65535, not 70000"
    )


def test_first_start_persists_generated_secrets(tmp_path: Path) -> None:
    config = load_config(None, env={"DLRHUB_DATA_DIR": str(tmp_path / "data")})
    first = prepare(config)
    assert first.generated == ["admin token", "source nrs360"]
    (source,) = first.config.sources
    assert (source.name, source.provider) == ("nrs360", "nrs360")
    assert (tmp_path / "data" / "admin.token").stat().st_mode & 0o777 == 0o600
    second = prepare(config)
    assert second.generated == []
    assert second.config.sources[0].token == source.token
    assert second.config.admin_token == first.config.admin_token


def test_the_zero_config_source_takes_its_token_and_keys_from_the_environment(
    tmp_path: Path,
) -> None:
    env = {
        "DLRHUB_DATA_DIR": str(tmp_path / "data"),
        "DLRHUB_SOURCES__NRS360__TOKEN": "Vq3-kD8_mZt2xLw9PbN4",
        "DLRHUB_SOURCES__NRS360__ALLOW_IPS": "203.0.113.0/24",
    }
    prepared = prepare(load_config(None, env=env), env=env)
    (source,) = prepared.config.sources
    assert (source.name, source.provider, source.token) == (
        "nrs360", "nrs360", "Vq3-kD8_mZt2xLw9PbN4",
    )  # fmt: skip
    assert source.allow_ips == (ipaddress.ip_network("203.0.113.0/24"),)
    assert prepared.generated == ["admin token"]  # the source's token is the operator's
    assert not (tmp_path / "data" / "source-nrs360.token").exists()
    with_file = write(tmp_path, "[[sources]]\nname = 'shop'\nprovider = '360nrs'\n"
                      "token = 'Hn7_qW2-rT5yU8iO1pAs'\n")  # fmt: skip
    with pytest.raises(ConfigErrors, match=r"sources\[1\]\.provider: is required"):
        load_config(with_file, env=env)  # a file with sources: nrs360 is a new source


def test_postgres_store_from_the_environment_never_shows_the_password() -> None:
    env = {
        "DLRHUB_STORE__BACKEND": "postgres",
        "DLRHUB_STORE__DSN": "postgresql://dlrhub:s3cret-pass@db.internal:5432/dlrhub",
    }
    config = load_config(None, env=env)
    assert (config.store.backend, config.store.schema) == ("postgres", "dlrhub")
    assert "s3cret-pass" not in config.store_label
    assert config.store_label == (
        "PostgreSQL postgresql://dlrhub:[REDACTED]@db.internal:5432/dlrhub, schema dlrhub"
    )


def test_a_variable_overrides_one_key_of_a_named_tables_subtable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"[[sources]]\nname = 'shop'\nprovider = '360nrs'\ntoken = '{TOKEN}'\n"
        "dlr_params = { ref = 'customId' }\n",
    )
    env = {"DLRHUB_SOURCES__SHOP__DLR_PARAMS__PHONE": "to"}
    (source,) = load_config(path, env=env).sources
    assert (source.options.dlr_params["ref"], source.options.dlr_params["phone"]) == (
        "customId",
        "to",
    )


def test_every_error_of_one_source_and_one_account_is_reported(tmp_path: Path) -> None:
    text = f"""
[[sources]]
name = "shop"
provider = "360nrs"
allow_ips = ["10.0.0.300"]
timezone = "Mars/Olympus"
colour = "red"
dlr_params = {{ ref = "customId", flavour = "x" }}

[[accounts]]
name = "conecta"
provider = "conectaline"
timeout = "soon"
configuration_name = "dlrhub"
key = "{TOKEN}"
"""
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), env={})
    assert str(error.value).splitlines() == [
        "sources[0].allow_ips[0]: '10.0.0.300' is not an IP address or CIDR network",
        "sources[0].timezone: 'Mars/Olympus' is not a time zone name",
        "sources[0].colour: unknown key (expected one of allow_ips, dlr_params,"
        " dlr_plus_as_space, name, provider, status_map, timezone, token)",
        "sources[0].dlr_params.flavour: unknown key (expected one of message_id, phone, ref,"
        " sender, smsc_id, smsc_reply, status, timestamp)",
        "sources[0].token: is required: 16 or more URL-safe characters",
        "accounts[0].timeout: must be a duration (e.g. 30s, 5m, 1h), not 'soon'",
        "accounts[0].key: unknown key (expected one of api_token, backoff, base_url,"
        " concurrency, configuration_name, email, group_size, name, password, poll, provider,"
        " rate_limit, retries, status_map, stop_statuses, timeout, token_renew_margin)",
        "accounts[0].api_token: is required, or email and password (login)",
    ]


def test_a_provider_that_does_not_push_cannot_be_a_source_and_one_without_a_client_no_account(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            write(tmp_path, "[[accounts]]\nname = 'x'\nprovider = 'carrier-pigeon'\n"), env={}
        )
    assert str(error.value).startswith("accounts[0].provider: 'carrier-pigeon' is not a provider (")
