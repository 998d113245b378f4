"""`dlrhub serve`: one receiver process, or several on one port (`server.processes`).

With `server.processes = 1` the command is the receiver: one Uvicorn process
(and its ingest worker, see dlrhub/receiver/ingest_worker.py).

With more, the command is a parent that opens one listening socket per receiver
on the port (`SO_REUSEPORT`) and starts that many receiver processes (`python -m
dlrhub.commands.serving`), each a whole app that inherits its socket. The kernel
spreads new connections over the sockets evenly. One socket shared by all was
tried first: the receiver that woke first took nearly every connection (one
process did the work of two). The parent keeps the sockets open, so while a
receiver restarts, connections for it wait in its socket's backlog, not reset.
Each answers with an `X-Dlrhub-Receiver: N` header (N from 0), and `/metrics`
says which one answered (`dlrhub_receiver_process{receiver="N"}`).

| backend    | who commits                                                        |
|------------|--------------------------------------------------------------------|
| SQLite     | one ingest worker, started by the parent, shared by all receivers  |
|            | over a Unix socket (`ingest.sock` in the data directory): the      |
|            | single writer; the receivers normalize, so more cores ingest more  |
| PostgreSQL | each receiver process itself, in its own process (the store        |
|            | serializes writers with an advisory lock); `seq` is gapless in     |
|            | commit order on both                                               |

On PostgreSQL a worker per receiver was measured and dropped (bench/README.md):
with 2 receivers on 2 cores, four Python processes took turns on the cores and
did a third of what two receivers committing themselves did (895 against 2,609
callbacks/s). With one receiver (`processes = 1`) the worker still helps there.

Sink delivery and the poller run in receiver 0 only (the data directory's
one-deliverer lock allows one). A receiver process that exits is started again
after `RESTART_DELAY_SECONDS`, and stops when the parent dies (its standard
input, a pipe from the parent, ends); the parent restarts the shared ingest worker
the same way (receivers answer 503 meanwhile, then reconnect). A receiver that
exits before it is ready on the first start fails the command.

SIGTERM or SIGINT (every role does the same): stop accepting, answer what is in
flight, stop, all within `shutdown_timeout`. Uvicorn drains HTTP requests for
`DRAIN_SHARE` of it; the ingest worker then commits what it was given and
answers it (`STOP_SHARE`); the parent kills what is left at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlrhub.commands.common import EXIT_FAILURE
from dlrhub.config import Config
from dlrhub.private_files import make_private_directory

log = logging.getLogger("dlrhub.commands.serving")  # also when run as __main__

RESTART_DELAY_SECONDS = 1.0
START_TIMEOUT_SECONDS = 60.0
DRAIN_SHARE = 0.6  # of shutdown_timeout: Uvicorn answers the requests in flight
STOP_SHARE = 0.3  # of shutdown_timeout: services stop, the ingest worker commits and answers
BACKLOG = 2048
UNIX_PATH_MAX = 100  # a Unix socket's path must fit in sun_path (108 bytes on Linux)
CONCURRENCY_LIMIT_LINE = "Exceeded concurrency limit."  # Uvicorn's, once per request


def uvicorn_server(config: Config, app: Any) -> Any:
    """The Uvicorn server of a receiver process, under the configured limits."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_config=None,
            access_log=False,  # dlrhub's own access line (dlrhub/receiver/access_log.py)
            proxy_headers=config.server.forwarded_allow_ips is not None,
            forwarded_allow_ips=config.server.forwarded_allow_ips,
            timeout_graceful_shutdown=max(1, int(config.shutdown_timeout * DRAIN_SHARE)),
            server_header=False,
            # Above this many connections Uvicorn answers each request 503. It has no header
            # timeout: the reverse proxy closes that (deploy/README.md). Slow bodies: 408 in
            # Hooks after server.body_timeout.
            limit_concurrency=config.server.limit_concurrency,
        )
    )


def configure_receiver_logging(config: Config) -> None:
    from dlrhub.commands.common import configure_logging
    from dlrhub.log_limits import RepeatedLineFilter

    configure_logging(config.log_level, config.log_format)
    logging.getLogger("uvicorn.error").addFilter(RepeatedLineFilter(CONCURRENCY_LIMIT_LINE))


def receiver_app(
    config: Config,
    services: list[Any],
    pollers: list[Any],
    *,
    ingest_socket: Path | None = None,
    process_label: str | None = None,
) -> Any:
    """The app of one receiver process, with the sink services and pollers it runs."""
    from dlrhub.app import create_app
    from dlrhub.commands.sinks import register_sink_metrics

    app = create_app(
        config,
        services=[*services, *pollers],
        ingest_worker=uses_ingest_worker(config),
        ingest_socket=ingest_socket,
        process_label=process_label,
    )
    register_sink_metrics(app.state.metrics.registry, services)
    for poller in pollers:  # the poller writes through the app's store, metrics in its registry
        poller.bind(app.state.store, app.state.metrics.registry)
    worker = app.state.ingest_worker
    if worker is not None:
        worker.stop_timeout = config.shutdown_timeout * STOP_SHARE
    return app


def uses_ingest_worker(config: Config) -> bool:
    """Whether a receiver process commits through an ingest worker (the table above)."""
    several_on_postgres = config.server.processes > 1 and config.store.backend == "postgres"
    return config.server.ingest_worker and not several_on_postgres


# The parent -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Launch:
    """What a receiver process is told, on its standard input."""

    config: Config
    index: int
    listen_fd: int
    ready_fd: int
    no_sinks: bool
    ingest_socket: Path | None


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on the port, one per receiver (`SO_REUSEPORT`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the others take the one the first got
            sock.listen(BACKLOG)
            sock.set_inheritable(True)
    except OSError as error:
        for sock in sockets:
            sock.close()
        from dlrhub.commands.common import CliError

        raise CliError(f"cannot listen on {host}:{port}: {error}") from None
    return sockets


def ingest_socket_path(config: Config) -> tuple[Path, Path | None]:
    """Where the shared ingest worker listens, and a temporary directory to remove after.

    In the data directory (0700) when the path fits a Unix socket; else in a new
    private temporary directory.
    """
    path = config.data_dir / "ingest.sock"
    if len(os.fsencode(path)) <= UNIX_PATH_MAX:
        make_private_directory(config.data_dir)
        return path, None
    directory = Path(tempfile.mkdtemp(prefix="dlrhub-"))  # created 0700
    return directory / "ingest.sock", directory


class Supervisor:
    """Runs `server.processes` receiver processes and, on SQLite, their one ingest worker."""

    def __init__(self, config: Config, sockets: list[socket.socket], *, no_sinks: bool) -> None:
        self.config = config
        self.sockets = sockets
        self.no_sinks = no_sinks
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self._ingest_socket: Path | None = None
        self._temporary: Path | None = None
        self._worker: Any = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self._stopping.set)
        try:
            return await self._run()
        finally:
            if self._temporary is not None:
                shutil.rmtree(self._temporary, ignore_errors=True)

    async def _run(self) -> int:
        from dlrhub.store import StoreUnavailable

        if self.config.store.backend == "sqlite" and self.config.server.ingest_worker:
            from dlrhub.receiver.ingest_worker import IngestWorker
            from dlrhub.receiver.metrics import Metrics

            self._ingest_socket, self._temporary = ingest_socket_path(self.config)
            self._worker = IngestWorker(self.config, Metrics(), listen=self._ingest_socket)
            try:
                await self._worker.start()
            except (OSError, StoreUnavailable, TimeoutError) as error:
                log.error("could not start the ingest worker: %s", error)
                return EXIT_FAILURE
        try:
            for index in range(self.config.server.processes):
                if not await self._start(index):
                    log.error("receiver process %d exited before it was ready", index)
                    return EXIT_FAILURE
                self._watchers.append(asyncio.create_task(self._watch(index)))
            await self._stopping.wait()
            log.info("shutting down %d receiver processes", len(self.processes))
            return 0
        finally:
            await self._stop()

    async def _start(self, index: int) -> bool:
        """Start receiver `index`; whether it got ready (False: it exited first)."""
        read_end, write_end = os.pipe()
        listen_fd = self.sockets[index].fileno()
        launch = Launch(
            self.config,
            index,
            listen_fd,
            write_end,
            self.no_sinks or index != 0,
            self._ingest_socket,
        )
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                pass_fds=[listen_fd, write_end],
                stdin=subprocess.PIPE,
            )
        finally:
            os.close(write_end)
        self.processes[index] = process
        assert process.stdin is not None
        launched = pickle.dumps(launch)
        # Left open: a receiver stops when it reads the end (its parent died).
        process.stdin.write(len(launched).to_bytes(8, "big") + launched)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        with os.fdopen(read_end, "rb") as pipe:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
            try:
                ready = await asyncio.wait_for(reader.read(1), START_TIMEOUT_SECONDS)
            except TimeoutError:
                ready = b""
            finally:
                transport.close()
        if not ready:
            await _end(process, 0)
            return False
        log.info("receiver process %d started (pid %d)", index, process.pid)
        return True

    async def _watch(self, index: int) -> None:
        """Start receiver `index` again whenever it exits, until the parent stops."""
        while True:
            process = self.processes[index]
            code = await process.wait()
            if process.stdin is not None:
                process.stdin.close()
            if self._stopping.is_set():
                return
            log.error("receiver process %d exited (code %s); starting a new one", index, code)
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            while not self._stopping.is_set() and not await self._start(index):
                log.error("receiver process %d exited before it was ready; again", index)
                await asyncio.sleep(RESTART_DELAY_SECONDS)
            if self._stopping.is_set():
                return

    async def _stop(self) -> None:
        """Receivers drain and stop, then the ingest worker commits what it got; within budget."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        self._stopping.set()
        for sock in self.sockets:
            sock.close()  # the receivers still hold theirs until each stops accepting
        for watcher in self._watchers:
            watcher.cancel()
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        receivers_by = deadline - self.config.shutdown_timeout * (1 - DRAIN_SHARE - STOP_SHARE)
        await asyncio.gather(
            *(_end(process, receivers_by - loop.time()) for process in self.processes.values())
        )
        if self._worker is not None:
            self._worker.stop_timeout = max(0.5, (deadline - loop.time()) / 2)
            await self._worker.stop()


async def _end(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait for `process` to exit; SIGKILL it if it has not within `grace` seconds."""
    try:
        await asyncio.wait_for(process.wait(), max(grace, 0))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def serve_processes(config: Config, args: argparse.Namespace) -> int:
    """The parent of `server.processes` receivers on one port (see the module docstring)."""
    sockets = listening_sockets(config.server.host, config.server.port, config.server.processes)
    try:
        return asyncio.run(Supervisor(config, sockets, no_sinks=args.no_sinks).run())
    finally:
        for sock in sockets:
            sock.close()


# A receiver process -------------------------------------------------------------


def receiver_main() -> int:
    """One receiver process of several: told its part on standard input by the parent."""
    from dlrhub.commands.alerts import alert_services
    from dlrhub.commands.common import CliError
    from dlrhub.commands.outbound import poller_services
    from dlrhub.commands.sinks import sink_services
    from dlrhub.commands.store import retention_services

    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    launch: Launch = pickle.loads(sys.stdin.buffer.read(size))  # noqa: S301 (our parent, a pipe)
    config = launch.config
    configure_receiver_logging(config)
    try:
        services = sink_services(config, argparse.Namespace(no_sinks=launch.no_sinks))
    except CliError as error:
        print(f"dlrhub: {error}", file=sys.stderr)
        return EXIT_FAILURE
    pollers = poller_services(config) if launch.index == 0 else []
    pruners = retention_services(config) if launch.index == 0 else []  # docs/retention.md
    alerts = alert_services(config) if launch.index == 0 else []  # docs/alerts.md
    app = receiver_app(
        config,
        [*services, *pruners, *alerts],
        pollers,
        ingest_socket=launch.ingest_socket,
        process_label=str(launch.index),
    )
    server = uvicorn_server(config, app)
    start_up = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        """Uvicorn's, then tell the parent: ready (a byte), or not (the pipe closes)."""
        await start_up(sockets)
        if server.started:
            os.write(launch.ready_fd, b"1")
            asyncio.get_running_loop().add_reader(0, parent_gone)
        os.close(launch.ready_fd)

    def parent_gone() -> None:
        """The parent keeps our stdin open: end of file means it died; stop as on SIGTERM."""
        if not os.read(0, 1):
            asyncio.get_running_loop().remove_reader(0)
            log.error("the parent process is gone; shutting down")
            server.should_exit = True

    server.startup = startup
    server.run(sockets=[socket.socket(fileno=launch.listen_fd)])
    return 0 if server.started else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(receiver_main())
