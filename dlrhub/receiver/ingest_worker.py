"""Committing callbacks in a worker process: the single writer, on a core of its own.

Python runs one thread at a time, so in one process the receiver's HTTP work,
the 360NRS normalizing and the SQLite statements share one core (bench/README.md
measures each). `dlrhub serve` therefore starts one worker process
(`server.ingest_worker = true`, the default). The receiver normalizes and redacts
each authenticated callback itself (`Normalize`: nothing unredacted leaves it) and
hands the worker the ready write (`Accept` or `Quarantine`, with its events); the
worker only commits them, with the store's group commit, and answers once the
commit is durable; only then does the receiver send the 200. Messages are
length-prefixed msgpack frames, gathered into one `write` per event-loop turn on
both sides.

Two ways to reach it:

| `server.processes` | who starts (and restarts) it | link                               |
|--------------------|------------------------------|------------------------------------|
| 1                  | the receiver                 | a socket pair                      |
| > 1, on SQLite     | `dlrhub serve`'s parent      | a Unix socket in the data directory |
|                    | (receivers reconnect)        | (0600 in 0700), one per receiver   |

With several receiver processes on SQLite they all share the one worker, the
store's single writer, so `seq` stays gapless in commit order and normalizing
runs on every core while committing runs on one. On PostgreSQL several receiver
processes commit themselves (the store serializes writers with an advisory lock;
dlrhub/commands/serving.py says why no worker there).

Failure: if the worker dies, every callback waiting on it and every new one is
answered 503 with `Retry-After` (the provider retries) until a new worker is up
(started or reconnected to after `RESTART_DELAY_SECONDS`); `/readyz` says 503 in
the meantime. If it stalls (SIGSTOP, a stuck disk), each callback it has not
answered within `server.ingest_timeout` is answered 503, and `/readyz` says 503
until the worker answers again; what it commits afterwards is there for the
provider's retry, answered 200 as a duplicate. While the worker reads nothing,
at most `LINK_BUFFER_BYTES` of callbacks wait for it: beyond that, new ones are
answered 503 at once instead of piling up in the receiver's memory.

The worker ignores SIGINT and SIGTERM: it stops when whoever started it closes the
socket pair (on shutdown, or when that process dies), after committing what it was
given and answering it. A receiver stops its worker within `shutdown_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import msgspec

from dlrhub.event import RawCallback
from dlrhub.log_limits import LimitedLog
from dlrhub.logs import configure_logging
from dlrhub.private_files import FILE_MODE
from dlrhub.receiver.deadlines import Deadlines
from dlrhub.receiver.errors import ReceiverBusy
from dlrhub.receiver.ingest import Ingested, Normalize, ingested
from dlrhub.receiver.metrics import Metrics
from dlrhub.receiver.settings import ReceiverSettings
from dlrhub.store import (
    Accept,
    Probe,
    Quarantine,
    Store,
    StoreUnavailable,
    WriteItem,
    WriteResult,
)
from dlrhub.store.settings import open_store

log = logging.getLogger(__name__)

RESTART_DELAY_SECONDS = 1.0
START_TIMEOUT_SECONDS = 60.0
# Callbacks written to the worker's socket and not yet read by it, beyond the socket's own
# buffer: a stalled worker is answered for by 503s, not by the receiver's memory.
LINK_BUFFER_BYTES = 16 * 1024 * 1024
_LENGTH_BYTES = 4
# Frames handled per event-loop turn, hence at most one commit's worth: the worker
# commits on its own loop (`blocking_commit`), so each turn normalizes, commits and
# answers up to this many. Taking every buffered frame at once let the receiver and
# the worker settle into one convoy of all 64 benchmark connections, each process
# idle while the other worked; 8 per turn made commits small and dear, 32 keeps
# both processes busy (bench/README.md has the measurements).
FRAMES_PER_TURN = 32
_COMMIT_NOTICE = 0  # a reply id that carries a commit's size, for the receiver's metrics


class IngestWorkerError(Exception):
    """The worker hit an unexpected error on one callback (it logged the trace)."""


class _Request(msgspec.Struct, array_like=True):
    """A write to commit; neither `accept` nor `quarantine`: a probe."""

    id: int
    accept: Accept | None = None  # msgspec encodes dataclasses by field name
    quarantine: Quarantine | None = None

    def item(self) -> Accept | Quarantine | Probe:
        return self.accept or self.quarantine or Probe()


class _Reply(msgspec.Struct, array_like=True):
    id: int
    ingested: Ingested | None = None
    unavailable: str | None = None  # why the store could not take it
    committed: int = 0  # with id _COMMIT_NOTICE: how many writes one commit held
    failed: str | None = None  # an unexpected error (a bug), logged in full by the worker
    pid: int = 0  # in the first notice: the worker's process id


_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(_Request).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode


class _Framed(asyncio.Protocol):
    """Length-prefixed frames in both directions; writes gathered per loop turn."""

    def __init__(
        self, on_frame: Callable[[bytes], None], write_buffer_limit: int | None = None
    ) -> None:
        self._on_frame = on_frame
        self._buffer = bytearray()
        self._scheduled = False
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._write_buffer_limit = write_buffer_limit
        self.paused = False  # the peer reads nothing and our buffer is over the limit
        # Kept: asking asyncio for the running loop costs a getpid() per call.
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self._write_buffer_limit is not None:
            self._transport.set_write_buffer_limits(high=self._write_buffer_limit)
        if self._out:  # sent before the connection was made (a listening worker's hello)
            self.flush()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._scheduled:
            self._take_frames()

    def _take_frames(self) -> None:
        """Hand on at most `FRAMES_PER_TURN` frames, the rest on the loop's next turn."""
        self._scheduled = False
        buffer = self._buffer
        start = 0
        end = len(buffer)
        taken = 0
        while end - start >= _LENGTH_BYTES:
            if taken == FRAMES_PER_TURN:
                self._scheduled = True
                self.loop.call_soon(self._take_frames)
                break
            size = int.from_bytes(buffer[start : start + _LENGTH_BYTES], "big")
            if end - start - _LENGTH_BYTES < size:
                break
            frame_start = start + _LENGTH_BYTES
            start = frame_start + size
            taken += 1
            self._on_frame(bytes(buffer[frame_start:start]))
        del buffer[:start]

    def send(self, payload: bytes) -> None:
        if not self._out:
            self.loop.call_soon(self.flush)
        self._out.append(len(payload).to_bytes(_LENGTH_BYTES, "big"))
        self._out.append(payload)

    def flush(self) -> None:
        """Write what `send` gathered (also called directly, to write it now)."""
        if self._transport is None:
            return  # not connected yet: written once it is (or never, once it is lost)
        out, self._out = self._out, []
        if out and not self._transport.is_closing():
            self._transport.write(b"".join(out))

    def close(self) -> None:
        self.flush()
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.closed.done():
            self.closed.set_result(None)


class IngestWorker:
    """The receiver's side: an `Ingester` that normalizes here and has the worker commit.

    Also a service of the app (`start`, `stop`): the lifespan starts it after the
    store is open and stops it before the store closes. It starts its own worker
    over a socket pair, or, given `connect`, uses the one listening on that Unix
    socket (`dlrhub serve` with several receiver processes starts that one, and
    gives it `listen`: then it serves every receiver connecting there).
    """

    def __init__(
        self,
        config: ReceiverSettings,
        metrics: Metrics,
        *,
        connect: Path | None = None,
        listen: Path | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._normalize = Normalize(config)
        self._connect_to = connect
        self._listen = listen
        self._process: asyncio.subprocess.Process | None = None
        self._worker_pid: int | None = None
        self._link: _Framed | None = None
        self._ready = False
        self._pending: dict[int, asyncio.Future[Ingested]] = {}
        self._next_id = _COMMIT_NOTICE + 1
        self._stopping = False
        self._restart: asyncio.Task[None] | None = None
        self.timeout = config.server.ingest_timeout
        self.stop_timeout = config.shutdown_timeout
        self._deadlines: Deadlines[asyncio.Future[Ingested]] = Deadlines(self.timeout, self._expire)
        self._stall = LimitedLog(log)  # ongoing from a missed deadline to the next reply
        self._restart_failures = LimitedLog(log)

    def __call__(self, raw: RawCallback) -> Coroutine[Any, Any, Ingested]:
        raw.dedupe_key()  # hashed here, before redaction; it travels with the item
        item = self._normalize(raw)
        if isinstance(item, Accept):
            return self._ask(_Request(0, accept=item))
        return self._ask(_Request(0, quarantine=item))  # not awaited here: one coroutine less

    async def probe(self) -> None:
        """Have the worker commit a probe; `StoreUnavailable` if it cannot, or not in time."""
        await self._ask(_Request(0))

    async def _ask(self, request: _Request) -> Ingested:
        link = self._link
        if link is None or not self._ready:
            raise ReceiverBusy("the ingest worker is not running; it is being restarted")
        if link.paused:
            raise ReceiverBusy("the ingest worker is not keeping up")
        request_id = request.id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Ingested] = link.loop.create_future()
        self._pending[request_id] = future
        link.send(_encode(request))
        key = self._deadlines.add(future, link.loop)
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)
            self._deadlines.discard(key)

    def _expire(self, future: asyncio.Future[Ingested]) -> None:
        """No answer within `timeout`: answer 503 now; the worker may still commit it."""
        if future.done():
            return
        future.set_exception(
            ReceiverBusy(f"the ingest worker did not answer within {self.timeout:g} s")
        )
        self._stall.happened(
            "the ingest worker (pid %s) has not answered a callback within %g s;"
            " callbacks are answered 503 until it does",
            self._worker_pid or "?",
            self.timeout,
        )

    @property
    def pid(self) -> int | None:
        """The worker's process id while one is running."""
        return self._worker_pid if self._ready else None

    def unavailable(self) -> str | None:
        """Why callbacks cannot be taken now (for `/readyz`), or None."""
        if not self._ready:
            return "the ingest worker is not running"
        if self._stall.ongoing:
            return f"the ingest worker has not answered within {self.timeout:g} s"
        if self._link is not None and self._link.paused:
            return "the ingest worker is not keeping up"
        return None

    async def start(self) -> None:
        await self._open()

    async def stop(self) -> None:
        """Close the link: the worker commits what it has, answers, then (if ours) exits."""
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        link, process = self._link, self._process
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        if link is not None:
            link.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(link.closed), self.stop_timeout)
        if process is not None:
            await _reap(process, max(0.0, deadline - loop.time()))
        self._fail_pending("the receiver is shutting down")

    async def _open(self) -> None:
        if self._connect_to is not None:
            await self._connect(self._connect_to)
        else:
            await self._spawn()

    async def _connect(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str | None] = loop.create_future()
        try:
            _, link = await loop.create_unix_connection(
                lambda: _Framed(functools.partial(self._on_reply, ready), LINK_BUFFER_BYTES),
                path=str(path),
            )
        except OSError as error:
            detail = f"the ingest worker does not answer at {path}: {error}"
            raise StoreUnavailable(detail) from None
        link.closed.add_done_callback(functools.partial(self._on_closed, ready))
        self._link = link
        try:
            failure = await asyncio.wait_for(ready, START_TIMEOUT_SECONDS)
        except BaseException:
            link.close()
            raise
        if failure is not None:
            raise StoreUnavailable(f"the ingest worker could not start: {failure}")
        self._ready = True
        log.info("connected to the ingest worker (pid %s)", self._worker_pid)

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                str(theirs.fileno()),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[str | None] = loop.create_future()
        try:
            _, link = await loop.create_unix_connection(
                lambda: _Framed(functools.partial(self._on_reply, ready), LINK_BUFFER_BYTES),
                sock=ours,
            )
            link.send(pickle.dumps(_Setup(self.config, self._listen)))
            link.closed.add_done_callback(functools.partial(self._on_closed, ready))
            self._link = link
            failure = await asyncio.wait_for(ready, START_TIMEOUT_SECONDS)
        except BaseException:
            await _reap(process, 0)
            raise
        if failure is not None:
            await _reap(process, self.stop_timeout)
            raise StoreUnavailable(f"the ingest worker could not start: {failure}")
        self._ready = True
        log.info("ingest worker started (pid %d)", process.pid)

    def _on_reply(self, ready: asyncio.Future[str | None], frame: bytes) -> None:
        reply = _decode_reply(frame)
        if self._stall.ongoing:  # it answers again, if late
            self._stall.ended("the ingest worker answers again after missing its deadline")
        if reply.id == _COMMIT_NOTICE:
            if not ready.done():  # the first notice: the store is open, or why not
                self._worker_pid = reply.pid or None
                ready.set_result(reply.unavailable)
            elif reply.committed:
                self.metrics.observe_commit(reply.committed)
            return
        future = self._pending.get(reply.id)
        if future is None or future.done():
            return  # its caller went away; the callback is committed all the same
        if reply.ingested is not None:
            future.set_result(reply.ingested)
        elif reply.failed is not None:
            future.set_exception(IngestWorkerError(reply.failed))
        else:
            future.set_exception(StoreUnavailable(reply.unavailable or "the store failed"))

    def _on_closed(self, ready: asyncio.Future[str | None], _: asyncio.Future[None]) -> None:
        was_running, self._ready = self._ready, False
        self._link = None
        if not ready.done():
            ready.set_result("it exited before opening the store (see its log lines above)")
        self._fail_pending("the ingest worker stopped before answering")
        # A worker that never got ready is `_open`'s failure: its caller (start, or the
        # restart loop) handles it. Restarting here too would add a loop per failure.
        if was_running and not self._stopping:
            log.error("the ingest worker stopped; %s", self._restart_what)
            self._restart = asyncio.get_running_loop().create_task(self._reopen())

    @property
    def _restart_what(self) -> str:
        if self._connect_to is not None:
            return "connecting to the new one when it is up"
        return "starting a new one"

    async def _reopen(self) -> None:
        while not self._stopping:
            if self._process is not None:
                await _reap(self._process, self.stop_timeout)
            await asyncio.sleep(RESTART_DELAY_SECONDS)
            try:
                await self._open()
            except (OSError, StoreUnavailable, TimeoutError) as error:
                self._restart_failures.happened("could not restart the ingest worker: %s", error)
                continue
            self._restart_failures.ended("the ingest worker restarted after failed attempts")
            return

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(StoreUnavailable(reason))


@dataclass(frozen=True, slots=True)
class _Setup:
    """The first frame to a worker we start: its settings, and where to listen, if anywhere."""

    config: ReceiverSettings
    listen: Path | None


async def _reap(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait for the worker to exit; kill it if it does not within `grace` seconds."""
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


# The worker process ------------------------------------------------------------


class _Worker:
    """Commits every request frame of one link as it arrives, answering each after its commit.

    The answers of a commit are written at once, from the store's `on_commit`,
    before the loop reads more frames. Left to the futures' callbacks they waited
    a loop turn, behind the next frames, and the receiver idled meanwhile. The
    callbacks stay for what no commit answers (a store failure). The store
    resolves writes in the order they were submitted, so the resolved ones are
    always at the head of `_waiting`.
    """

    def __init__(self, store: Store, link: _Framed) -> None:
        self.store = store
        self.link = link
        self._waiting: deque[tuple[int, WriteItem, asyncio.Future[WriteResult]]] = deque()

    def on_commit(self, size: int) -> bool:
        """The store's `on_commit`: the commit notice and this link's answers, in one write now.

        Whether the commit held a write of this link. `size` 0: no notice (another
        link got it), so that the receivers' metrics add up to the worker's commits.
        """
        replies = self._answers()
        if not replies:
            return False
        if size:
            self.link.send(_encode(_Reply(_COMMIT_NOTICE, committed=size)))
        for reply in replies:
            self.link.send(reply)
        self.link.flush()
        return True

    def on_request(self, frame: bytes) -> None:
        request = _decode_request(frame)
        item = request.item()
        try:
            future = self.store.submit(item)
        except StoreUnavailable as error:
            self.link.send(_encode(_Reply(request.id, unavailable=str(error))))
            return
        except Exception as error:  # a bug: answer this callback, keep serving the others
            what = "a probe" if isinstance(item, Probe) else f"a callback of {item.raw.source}"
            log.exception("unexpected error on %s", what)
            self.link.send(_encode(_Reply(request.id, failed=repr(error))))
            return
        self._waiting.append((request.id, item, future))
        future.add_done_callback(self._on_done)

    def _on_done(self, _: asyncio.Future[WriteResult]) -> None:
        for reply in self._answers():
            self.link.send(reply)

    def _answers(self) -> list[bytes]:
        waiting = self._waiting
        replies = []
        while waiting and waiting[0][2].done():
            request_id, item, future = waiting.popleft()
            error = future.exception()
            if error is None:
                reply = _Reply(request_id, ingested(item, future.result()))
            else:  # the store fails writes only with StoreUnavailable
                reply = _Reply(request_id, unavailable=str(error))
            replies.append(_encode(reply))
        return replies


class _Receivers:
    """The links the worker serves: its starter's, and each receiver's on the Unix socket."""

    def __init__(self) -> None:
        self.workers: set[_Worker] = set()
        self.store: Store | None = None

    def on_commit(self, size: int) -> None:
        """Each link's answers; the commit's notice to the first link it answers only."""
        for worker in list(self.workers):
            if worker.on_commit(size):
                size = 0

    def connection(self) -> _Framed:
        """A link for a receiver connecting to the Unix socket: told the worker is ready."""
        store = self.store
        assert store is not None  # listening starts once the store is open
        holder: list[_Worker] = []
        link = _Framed(lambda frame: holder[0].on_request(frame))
        worker = _Worker(store, link)
        holder.append(worker)
        self.workers.add(worker)
        link.send(_encode(_Reply(_COMMIT_NOTICE, pid=os.getpid())))
        link.closed.add_done_callback(lambda _: self.workers.discard(worker))
        return link


async def _serve(sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    setup: asyncio.Future[_Setup | None] = loop.create_future()  # None: the starter left
    receivers = _Receivers()
    worker: _Worker | None = None

    def on_frame(frame: bytes) -> None:
        if not setup.done():
            setup.set_result(pickle.loads(frame))  # noqa: S301 (our own parent, over a socketpair)
        elif worker is not None:
            worker.on_request(frame)

    _, link = await loop.create_unix_connection(lambda: _Framed(on_frame), sock=sock)

    def on_closed(_: asyncio.Future[None]) -> None:
        if not setup.done():
            setup.set_result(None)

    link.closed.add_done_callback(on_closed)
    given = await setup
    if given is None:
        return 1
    config = given.config
    configure_logging(config.log_level, config.log_format)
    store: Store = open_store(
        config.store,
        config.data_dir,
        on_commit=receivers.on_commit,
        blocking_commit=True,
        place=config.number_places(),
    )
    try:
        await store.open()
    except StoreUnavailable as error:
        link.send(_encode(_Reply(_COMMIT_NOTICE, unavailable=str(error))))
        link.close()
        return 1
    receivers.store = store
    server: asyncio.AbstractServer | None = None
    try:
        if given.listen is not None:
            server = await _listen(given.listen, receivers)
        worker = _Worker(store, link)
        receivers.workers.add(worker)
        link.send(_encode(_Reply(_COMMIT_NOTICE, pid=os.getpid())))  # ready
        await link.closed
    finally:
        if server is not None:
            server.close()  # no new receivers; those connected get their answers below
        await store.close()  # commits what is queued and answers it
        for other in list(receivers.workers):
            other.link.close()
        if given.listen is not None:
            with contextlib.suppress(OSError):
                given.listen.unlink()
    return 0


async def _listen(path: Path, receivers: _Receivers) -> asyncio.AbstractServer:
    """Serve receivers on the Unix socket `path` (in a 0700 directory), made 0600."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous worker's
    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(receivers.connection, path=str(path))
    os.chmod(path, FILE_MODE)
    return server


def main(argv: list[str]) -> int:
    """`python -m dlrhub.receiver.ingest_worker FD`, started by `IngestWorker` only."""
    for number in (signal.SIGINT, signal.SIGTERM):  # stop when the starter says so
        signal.signal(number, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    try:
        import uvloop

        return uvloop.run(_serve(sock))
    finally:
        with contextlib.suppress(OSError):
            sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
