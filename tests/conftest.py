"""Shared fixtures: a configured dlrhub served by Uvicorn on loopback."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
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
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound for the whole test, never listening,
    so no other process can start listening there meanwhile (as with a closed free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path), env={})


@dataclass
class Running:
    config: Config
    base_url: str
    client: httpx.AsyncClient
    admin: httpx.AsyncClient


@pytest.fixture(params=["in_process", "ingest_worker"])
async def running(config: Config, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The app under Uvicorn, ingesting in its own process and through the worker process."""
    async with run_app(config, ingest_worker=request.param == "ingest_worker") as running:
        yield running


@pytest.fixture
async def running_in_process(config: Config) -> AsyncIterator[Running]:
    """`running` for tests that patch what the receiver's own process runs."""
    async with run_app(config, ingest_worker=False) as running:
        yield running


@contextlib.asynccontextmanager
async def run_app(config: Config, *, ingest_worker: bool) -> AsyncIterator[Running]:
    app = create_app(config, ingest_worker=ingest_worker)
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin,
    ):
        yield Running(config, base_url, client, admin)
