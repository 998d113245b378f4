"""The wheel as a user installs it: built from what the image copies (pyproject.toml,
README.md, dlrhub/), installed into a fresh venv (no system site-packages, no PYTHONPATH),
and `dlrhub serve` from that venv serving `/docs` with its assets from the installed files.

Takes ~20 s: the build and the install of the dependencies come from pip's cache.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import write_config
from tests.processes import (
    ServerProcess,
    answers_healthz,
    environment_without_dlrhub,
    running_on_free_port,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "dlrhub")  # what deploy/Dockerfile copies
CONSOLE = ROOT / "dlrhub" / "console"
PACKAGE_DATA = ("static", "templates")  # console folders that hold no Python
ASSETS = (
    "/console/static/docs.js",
    "/console/static/docs.css",
    "/console/static/vendor/swagger-ui/swagger-ui.css",
    "/console/static/vendor/swagger-ui/swagger-ui-bundle.js",
)


async def run(*argv: str | Path, cwd: Path, env: dict[str, str], seconds: float) -> str:
    """`argv` run to its end without blocking the loop; its output, or the test fails."""
    process = await asyncio.create_subprocess_exec(
        *map(str, argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), seconds)
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{text}"
    return text


def files_under(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


async def test_the_installed_wheel_serves_docs_and_its_assets(tmp_path: Path) -> None:
    env = environment_without_dlrhub()
    env.pop("PYTHONPATH", None)  # the installed copy, not this checkout's, must run
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    await run(
        sys.executable, "-m", "build", "--wheel", "--outdir", dist, source,
        cwd=tmp_path, env=env, seconds=180,
    )  # fmt: skip
    [wheel] = dist.glob("dlrhub-*.whl")
    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env, seconds=60)
    python = venv / "bin" / "python"
    await run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path, env=env, seconds=300)

    where = await run(
        python, "-c", "import dlrhub.console; print(dlrhub.console.__file__)",
        cwd=tmp_path, env=env, seconds=30,
    )  # fmt: skip
    installed = Path(where.strip()).parent
    assert installed.is_relative_to(venv), installed
    for folder in PACKAGE_DATA:
        assert files_under(installed / folder) == files_under(CONSOLE / folder), folder

    config = write_config(tmp_path / "config")

    def make(port: int) -> ServerProcess:
        return ServerProcess(
            [str(venv / "bin" / "dlrhub"), "serve", "--config", str(config), "--port", str(port)],
            tmp_path / f"serve-{port}.log",
            answers_healthz,
            port,
            cwd=tmp_path,
            env=env,
        )

    async with running_on_free_port(make) as server, httpx.AsyncClient() as client:
        page = await client.get(f"{server.base_url}/docs")
        assert page.status_code == 200
        assert "Content-Security-Policy" in page.headers
        for path in ASSETS:
            assert f'"{path.removeprefix("/")}"' in page.text, path
            answer = await client.get(f"{server.base_url}{path}")
            assert answer.status_code == 200, path
            assert answer.content == (CONSOLE / path.removeprefix("/console/")).read_bytes()
