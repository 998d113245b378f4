"""`dlrhub prune [--dry-run]` and what `dlrhub sinks status` says of retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dlrhub.cli import main
from dlrhub.store import Accept, SQLiteStore
from dlrhub.store.database import SQLiteDatabase
from tests.store.test_retention import callback, count, event, set_cursor

CONFIG = """
data_dir = "{data_dir}"

[retention]
events = "5d"
raw_callbacks = "1d"

[[sinks]]
name = "print"
kind = "stdout"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = tmp_path / "dlrhub.toml"
    path.write_text(CONFIG.format(data_dir=data_dir))

    async def prepare() -> None:
        store = SQLiteStore(data_dir / "dlrhub.sqlite3")
        await store.open()
        old = datetime.now(UTC) - timedelta(days=20)
        seqs = []
        for number in range(5):
            result = await store.write(Accept(callback(f"b{number}", old), [event("m", old)]))
            seqs.append(result.events[0].seq)
        await store.close()
        database = SQLiteDatabase(data_dir / "dlrhub.sqlite3")
        await database.open()
        await set_cursor(database, "print", seqs[2])  # 2 old events not delivered yet
        await database.close()

    asyncio.run(prepare())
    return path


def run(config_file: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main([*argv, "--config", str(config_file)]) == 0
    return capsys.readouterr().out


def events_left(config_file: Path) -> int:
    async def counted() -> int:
        database = SQLiteDatabase(config_file.parent / "data" / "dlrhub.sqlite3")
        await database.open()
        try:
            return await count(database, "SELECT count(*) FROM events")
        finally:
            await database.close()

    return asyncio.run(counted())


def test_prune_dry_run_then_prune(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run(config_file, capsys, "sinks", "status")
    assert "retention held back by sink print: 2 event(s) older than 5.0d" in status

    out = run(config_file, capsys, "prune", "--dry-run")
    assert "events: 3 would be deleted (older than 5.0d)" in out
    assert "raw_callbacks: 3 would be deleted (older than 7.0d)" in out
    assert "quarantine: kept (no retention set)" in out
    assert "events after seq 3 are kept until sink print delivers them" in out
    assert events_left(config_file) == 5

    out = run(config_file, capsys, "prune")
    assert "events: 3 deleted (older than 5.0d)" in out
    assert "raw_callbacks: 3 deleted" in out
    assert events_left(config_file) == 2
    assert "events: 0 would be deleted" in run(config_file, capsys, "prune", "--dry-run")


def test_serve_prunes_only_when_retention_is_set(tmp_path: Path) -> None:
    from dlrhub.commands.store import retention_services
    from dlrhub.config import load_config
    from dlrhub.store.retention import RetentionService

    path = tmp_path / "dlrhub.toml"
    path.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    (service,) = retention_services(load_config(path, env={}))
    assert isinstance(service, RetentionService)
    assert [sink.name for sink in service.pruner.sinks] == ["print"]
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert retention_services(load_config(path, env={})) == []
