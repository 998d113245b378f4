"""What dlrhub writes under its data directory is readable by its own user only."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx

from dlrhub.private_files import create_private_file, make_private_directory
from tests.processes import dlrhub_serve
from tests.waiting import eventually_async


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """This process's umask (and so its children's) set to `mask` for a while."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(directory: Path) -> dict[str, str]:
    """'0700' or '0600' (or whatever it is) of `directory` and of everything under it."""
    found = {".": oct(stat.S_IMODE(directory.stat().st_mode))}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def private(found: dict[str, str], directory: Path) -> bool:
    return all(
        mode == ("0o700" if (directory / name).is_dir() else "0o600")
        for name, mode in found.items()
    )


async def test_every_file_serve_creates_is_0600_and_every_directory_0700(tmp_path: Path) -> None:
    data = tmp_path / "dlrhub-data"
    config = tmp_path / "dlrhub.toml"
    config.write_text(
        '[[sinks]]\nname = "archive"\nkind = "jsonl"\npath = "dlrhub-data/sinks/events.jsonl"\n',
        encoding="utf-8",
    )
    async with contextlib.AsyncExitStack() as stack:
        with umask(0):  # the modes must not depend on the umask: 0 would make files 0666
            server = await stack.enter_async_context(
                dlrhub_serve("--config", str(config), log_dir=tmp_path, cwd=tmp_path)
            )
        token = (data / "source-nrs360.token").read_text(encoding="utf-8").strip()
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=server.base_url))
        for ref in ("r-1", "r-2"):
            answer = await client.get(f"/hooks/nrs360/dlr?token={token}&status=1&ref={ref}")
            assert answer.status_code == 200, answer.text
        archive = data / "sinks" / "events.jsonl"
        await eventually_async(
            lambda: archive.exists() and archive.read_bytes().count(b"\n") == 2,
            what="both events in the JSONL sink's file",
        )
        running = modes(data)
    # While it runs, SQLite's -wal and -shm files are there too.
    assert {"dlrhub.sqlite3-wal", "dlrhub.sqlite3-shm", "sinks/events.jsonl"} <= set(running)
    assert {"admin.token", "source-nrs360.token", "dlrhub.sqlite3", "sinks"} <= set(running)
    assert private(running, data), running
    assert private(modes(data), data), modes(data)


def test_private_files_and_directories_whatever_the_umask(tmp_path: Path) -> None:
    with umask(0):
        make_private_directory(tmp_path / "a" / "b")
        assert create_private_file(tmp_path / "a" / "c" / "file")
        assert not create_private_file(tmp_path / "a" / "c" / "file")
    assert modes(tmp_path / "a") == {
        ".": "0o700",
        "b": "0o700",
        "c": "0o700",
        "c/file": "0o600",
    }
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o750)
    existing.chmod(0o750)
    make_private_directory(existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o750  # the operator's choice stays
