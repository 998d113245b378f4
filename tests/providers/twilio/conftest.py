"""A dlrhub with a Twilio source, served by Uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dlrhub.config import load_config
from tests.conftest import ADMIN_TOKEN, Running, run_app

AUTH_TOKEN = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"  # a Twilio auth token: 32 hex digits
PUBLIC_URL = "https://dlr.example.com"


def write_twilio_config(directory: Path, server: str = "") -> Path:
    """A config with one Twilio source named `twilio`; `server` is the [server] table's body."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
admin_token = "{ADMIN_TOKEN}"

[server]
{server}

[[sources]]
name = "twilio"
provider = "twilio"
auth_token = "{AUTH_TOKEN}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(params=["in_process", "ingest_worker"])
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The app with a Twilio source and no public_url: it signs its own address."""
    config = load_config(write_twilio_config(tmp_path), env={})
    async with run_app(config, ingest_worker=request.param == "ingest_worker") as running:
        yield running


@pytest.fixture
async def behind_proxy(tmp_path: Path) -> AsyncIterator[Running]:
    """The app with a Twilio source and `server.public_url` set, as behind a proxy."""
    server = f'public_url = "{PUBLIC_URL}"\nforwarded_allow_ips = "127.0.0.1"'
    config = load_config(write_twilio_config(tmp_path, server), env={})
    async with run_app(config, ingest_worker=False) as running:
        yield running
