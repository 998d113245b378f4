"""Real server processes for the tests: `dlrhub serve`, `dlrhub worker`, redis-server, nats-server.

They run under asyncio (`create_subprocess_exec`), so starting, waiting for and killing
them never blocks the event loop of the test that uses them. Their stdout and stderr go
to a log file; a server that exits or does not come up fails the test at once with that
output (`ServerDidNotStart`), instead of the test failing later for a reason it cannot tell.

Ports: these servers take a port number, not a socket, so `start_on_free_port` picks a
free one and the server binds it a moment later; another process may take it in between.
A server counts as up only once it is the one listening there (`listens_on`); when it
exits saying the address is in use, it is started again on another port, up to
`BIND_ATTEMPTS` times. That race is the only failure retried. (In-process Uvicorn gets a
socket bound beforehand instead: tests/serving.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.waiting import eventually_async

START_TIMEOUT = 30.0
STOP_GRACE = 15.0
BIND_ATTEMPTS = 3
ADDRESS_IN_USE = "address already in use"  # uvicorn, redis-server and nats-server all say it

Ready = Callable[["ServerProcess"], Awaitable[bool]]


class ServerDidNotStart(Exception):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(f"{message}; its output:\n{output or '(empty)'}")
        self.output = output

    @property
    def address_in_use(self) -> bool:
        return ADDRESS_IN_USE in self.output.lower()


@dataclass
class ServerProcess:
    """One server program; `start()` returns once `ready` says it serves."""

    argv: list[str]
    log: Path
    ready: Ready
    port: int = 0
    cwd: Path | None = None
    env: dict[str, str] | None = None
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return " ".join(Path(part).name for part in self.argv[:4])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self._process is not None, f"{self.name} was never started"
        return self._process

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def start(self, seconds: float = START_TIMEOUT) -> None:
        with self.log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env
            )

        async def up_or_exited() -> bool:
            if self.process.returncode is not None:
                return True
            if self.port and not listens_on(self.process.pid, self.port):
                return False  # whoever answers there now, it is not this server (yet)
            return await self.ready(self)

        try:
            await eventually_async(up_or_exited, seconds, f"{self.name} to come up")
        except AssertionError:
            await self.stop(grace=0)
            raise ServerDidNotStart(
                f"{self.name} did not come up on port {self.port} within {seconds:g}s",
                self.output(),
            ) from None
        if self.process.returncode is not None:
            raise ServerDidNotStart(
                f"{self.name} exited with code {self.process.returncode} before it came up",
                self.output(),
            )

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds (0: SIGKILL at once); the exit code."""
        if self._process is None:
            return None
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(self._process.wait(), grace or 10.0)
            except TimeoutError:
                self._process.kill()
                await asyncio.wait_for(self._process.wait(), 10.0)
        return self._process.returncode

    async def kill(self) -> int | None:
        return await self.stop(grace=0)


async def start_on_free_port(
    make: Callable[[int], ServerProcess],
    seconds: float = START_TIMEOUT,
    pick: Callable[[], int] | None = None,
) -> ServerProcess:
    """`make(port)` started on a free port (`pick`'s, else `free_port()`'s); again on
    another one if that was taken meanwhile."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        server = make((pick or free_port)())
        try:
            await server.start(seconds)
        except ServerDidNotStart as error:
            if attempt == BIND_ATTEMPTS or not error.address_in_use:
                raise
            continue
        return server
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def running_on_free_port(
    make: Callable[[int], ServerProcess],
    grace: float = STOP_GRACE,
    pick: Callable[[], int] | None = None,
) -> AsyncIterator[ServerProcess]:
    """`start_on_free_port`, stopped (SIGTERM, then SIGKILL after `grace`) on the way out."""
    server = await start_on_free_port(make, pick=pick)
    try:
        yield server
    finally:
        await server.stop(grace)


def free_port() -> int:
    """A port nothing listens on now; only for programs that bind it themselves (see above)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int) -> int:
    """The first of `count` consecutive free ports, below Linux's ephemeral range (32768 and
    up), where the many client connections of a test run do not take the ones after it."""
    for _ in range(200):
        first = random.randrange(20_000, 32_000 - count)
        if all(_bindable(first + offset) for offset in range(count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ready when... ----------------------------------------------------------------


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port` (Linux /proc; elsewhere
    assumed). Without this a server that lost its port to another process would look up."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    listening = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()  # sl local_address rem_address st ... inode
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    listening.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(OSError):
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(descriptor) in listening:
                    return True
    return False


async def accepts_tcp(server: ServerProcess) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def answers_healthz(server: ServerProcess) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as client:
        try:
            return (await client.get(f"{server.base_url}/healthz")).status_code == 200
        except httpx.TransportError:
            return False


def prints(text: str) -> Ready:
    async def printed(server: ServerProcess) -> bool:
        return text in server.output()

    return printed


# dlrhub itself -------------------------------------------------------------------


def dlrhub_argv(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "dlrhub", *arguments]


def environment_without_dlrhub() -> dict[str, str]:
    """This environment (PYTHONPATH included) minus any DLRHUB_* setting of the caller's."""
    return {key: value for key, value in os.environ.items() if not key.startswith("DLRHUB_")}


@contextlib.asynccontextmanager
async def dlrhub_serve(
    *arguments: str, log_dir: Path, name: str = "serve", cwd: Path | None = None,
    grace: float = STOP_GRACE, env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServerProcess]:  # fmt: skip
    """`python -m dlrhub serve ARGUMENTS --port P`, once its /healthz answers 200.

    `env`: DLRHUB_* variables it gets (none of the caller's reach it)."""

    def make(port: int) -> ServerProcess:
        return ServerProcess(
            dlrhub_argv("serve", *arguments, "--port", str(port)),
            log_dir / f"{name}-{port}.log",
            answers_healthz,
            port,
            cwd=cwd,
            env={**environment_without_dlrhub(), **(env or {})},
        )

    async with running_on_free_port(make, grace) as server:
        yield server


async def run_dlrhub(
    *arguments: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m dlrhub ARGUMENTS` run to its end without blocking the event loop."""
    argv = dlrhub_argv(*arguments)
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**environment_without_dlrhub(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(argv, process.returncode, stdout.decode(), stderr.decode())
