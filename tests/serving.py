"""Serve an ASGI app with a real Uvicorn on an ephemeral loopback port, in-process.

The socket is bound here (port 0) and handed to Uvicorn, so no other process can take
the port between choosing it and serving on it. A server that does not come up fails
the test at once with what Uvicorn logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn

from tests.waiting import eventually_async

START_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def serve_app(app: Any, **uvicorn_options: Any) -> AsyncIterator[str]:
    """Yield the base URL while Uvicorn serves `app` on 127.0.0.1 with a free port."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket says TCP; otherwise each answer waits for a delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {"log_config": None, "access_log": False, "lifespan": "on", **uvicorn_options}
    # dlrhub writes its own access line; Uvicorn's, off, is still caught by pytest (which
    # attaches its handler to loggers that do not propagate, as `access_log=False` makes it).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exit:  # uvicorn's way to say startup failed; a task must not
            raise RuntimeError(f"uvicorn exited with code {exit.code}") from None

    with recording("uvicorn") as output:
        task = asyncio.create_task(serve())
        with contextlib.suppress(AssertionError):  # judged below, with what uvicorn said
            await eventually_async(
                lambda: server.started or task.done(), START_TIMEOUT, "uvicorn to start"
            )
        if not server.started:
            state = "stopped" if task.done() else f"did not start within {START_TIMEOUT:g}s"
            server.should_exit = True
            try:
                await asyncio.wait_for(task, START_TIMEOUT)
            except TimeoutError:
                output.append("(it did not stop when told to either)")
            except Exception as error:
                output.append(f"serve() raised {error!r}")
            sock.close()
            log = "\n".join(output) or "(nothing)"
            pytest.fail(f"uvicorn {state} before serving; it logged:\n{log}", pytrace=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.contextmanager
def recording(logger_name: str) -> Iterator[list[str]]:
    """The formatted records (tracebacks included) `logger_name` emits meanwhile."""
    lines: list[str] = []
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
