"""The outbound demo of README.md and docs/outbound.md, run as written against
`python -m dlrhub.testing`: both show the same commands and statuses, the
messages reach the statuses shown, and no HTTP client log line is printed."""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import (
    ServerProcess,
    environment_without_dlrhub,
    free_port_block,
    prints,
    running_on_free_port,
)

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED_PORT = 9100  # the fakes' first port in the documents
POLL_LINE = re.compile(r"^(dlrhub poll --config demo\.toml --once)\s+# repeat [^:]*: (.+)$", re.M)
DEADLINE = 90.0


def demo_block(text: str) -> str:
    """The shell block that starts the fakes."""
    return text.split("python -m dlrhub.testing --port 9100 &", 1)[1].split("```", 1)[0]


def documented_statuses(path: Path) -> list[str]:
    match = POLL_LINE.search(demo_block(path.read_text(encoding="utf-8")))
    assert match, f"{path.name}: no 'dlrhub poll ... --once  # repeat ...: statuses' line"
    return [word.strip() for word in match.group(2).split(",")]


def test_readme_and_docs_show_the_same_commands_and_statuses() -> None:
    readme, docs = ROOT / "README.md", ROOT / "docs" / "outbound.md"
    assert documented_statuses(readme) == documented_statuses(docs)
    docs_lines = demo_block(docs.read_text(encoding="utf-8")).splitlines()
    for line in demo_block(readme.read_text(encoding="utf-8")).splitlines():
        if line.startswith("dlrhub "):
            assert line in docs_lines, f"README's {line!r} is not in docs/outbound.md"


def fakes_up(port: int) -> object:
    banner = prints("# conectaline: base_url")

    async def ready(server: ServerProcess) -> bool:
        if not await banner(server):
            return False
        for offset in range(4):  # 360NRS, Onurix, UVox, Conectaline
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port + offset)) != 0:
                    return False
        return True

    return ready


async def test_the_documented_demo_runs_as_written(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "outbound.md").read_text(encoding="utf-8")
    block = demo_block(text)
    config_text = block.split("cat > demo.toml <<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    commands = block.split("# 3. send, then poll\n", 1)[1].split("\n\n", 1)[0].splitlines()
    statuses = documented_statuses(ROOT / "docs" / "outbound.md")

    def make(port: int) -> ServerProcess:
        return ServerProcess(
            ["python", "-m", "dlrhub.testing", "--port", str(port)],
            tmp_path / f"fakes-{port}.log",
            fakes_up(port),  # type: ignore[arg-type]
            port,
            cwd=tmp_path,
            env=environment_without_dlrhub(),
        )

    async with running_on_free_port(make, pick=lambda: free_port_block(4)) as fakes:
        for offset in range(4):
            old, new = f":{DOCUMENTED_PORT + offset}/", f":{fakes.port + offset}/"
            config_text = config_text.replace(old, new)
        (tmp_path / "demo.toml").write_text(config_text, encoding="utf-8")
        outputs: list[str] = []

        def run(line: str) -> str:
            argv = shlex.split(line.split("  #", 1)[0])
            assert argv[0] == "dlrhub"
            done = subprocess.run(
                ["python", "-m", "dlrhub", *argv[1:]],
                cwd=tmp_path,
                env=environment_without_dlrhub(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"{line}: {done.stderr}"
            outputs.append(done.stdout + done.stderr)
            return done.stdout

        sends = [line for line in commands if line.startswith("dlrhub send ")]
        assert len(sends) == 2
        for line in sends:
            assert "  accepted  " in run(line)
        poll = next(line for line in commands if " --once" in line)
        deadline = time.monotonic() + DEADLINE
        while True:
            run(poll)
            settled = run("dlrhub poll status --config demo.toml").count(": active; polling 0 ")
            rows = table_rows(run("dlrhub events --config demo.toml"))
            last = {row["SOURCE"]: row["STATUS"] for row in rows}
            # UVox reports no delivery: "SMS Sent" is its last answer.
            if settled == 4 and last == {"onurix-demo": "delivered", "uvox-demo": "sent"}:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"not all delivered within {DEADLINE:g}s: {rows}")
            await asyncio.sleep(1.0)  # the poller's schedule is in seconds
        for line in commands:
            if line.startswith(("dlrhub poll status", "dlrhub events")):
                run(line)

    for source in last:
        seen = [row["STATUS"] for row in rows if row["SOURCE"] == source]
        assert seen[0] == "accepted", seen
        later = seen[1:]
        assert set(later) <= set(statuses), f"{source}: {seen}, documented {statuses}"
        assert later == sorted(later, key=statuses.index), f"{source}: {seen}"
    for output in outputs:
        assert "HTTP Request" not in output and " httpx" not in output, output


def table_rows(table: str) -> list[dict[str, str]]:
    header, *lines = table.splitlines()
    names = ["SEQ", "RECEIVED", "SOURCE", "PROVIDER", "TYPE", "STATUS", "MESSAGE"]
    assert header.split()[: len(names)] == names
    return [dict(zip(names, line.split(), strict=False)) for line in lines]
