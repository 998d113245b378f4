"""Shared fixtures: a configured dlrhub served by Uvicorn on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dlrhub.app import create_app
from dlrhub.config import Config, load_config
from tests.serving import serve_app

SOURCE_TOKEN = "source-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"


def write_config(directory: Path, extra: str = "", source_extra: str = "") -> Path:
    """A config with two 360NRS sources; `source_extra` lands in the first one."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
admin_token = "{ADMIN_TOKEN}"

[[sources]]
name = "nrs360"
provider = "360nrs"
token = "{SOURCE_TOKEN}"
{source_extra}

[[sources]]
name = "office"
provider = "360nrs"
token = "{SOURCE_TOKEN}-office"
allow_ips = ["192.0.2.0/24"]
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path), env={})


@dataclass
class Running:
    config: Config
    base_url: str
    client: httpx.AsyncClient
    admin: httpx.AsyncClient


@pytest.fixture
async def running(config: Config) -> AsyncIterator[Running]:
    app = create_app(config)
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin,
    ):
        yield Running(config, base_url, client, admin)
