"""Which sinks this worker delivers: leases taken, renewed, spread and handed back.

Any number of workers (`dlrhub worker`, `dlrhub serve` with sinks) share one
PostgreSQL database; each sink is delivered by the one worker holding its
lease (`dlrhub/store/sink_leases.py`), every write of its progress fenced by
the lease's token (`fencing.py`). Every `lease / 3` a worker:

1. says it is alive and counts the live workers (heartbeat rows);
2. renews the leases it holds; one that is not its own any more is lost:
   the runner is cancelled at once;
3. holds at most ceil(sinks / live workers): it hands extra sinks back
   (runner stopped, cursor committed, lease released), so others take them;
4. takes free or expired leases up to that share, starting their runners;
   beyond its share, it takes expired ones too (a worker that died still
   counts as live for a lease), so a dead worker's sinks move within about
   a lease, and the next rounds spread them again.

**Local deadline.** The monotonic time is read just *before* the acquire or
renew is sent; that time + lease is this worker's deadline, which comes before
the database's expiry (set when the statement ran, later). When the deadline
passes without a renew that came back (database down, network cut), the
runner is cancelled there and then: nothing is delivered after it, and nobody
else can take the sink before the database's expiry. So a sink is never
delivered by two workers at once, up to clock *rate* differences (not offsets).

**Stopping** (SIGTERM): runners stop and commit their cursors, then the leases
are released (`expires_us = 0`): the other workers take the sinks over at
their next round, not a lease later.

On SQLite the one-deliverer lock (`deliverer_lock.py`) already keeps a second
deliverer out, so the one that holds it takes every lease at once (`force`),
even one a killed predecessor left unexpired.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from dlrhub.sinks.engine import SinkRunner
from dlrhub.sinks.fencing import FencedSinkState
from dlrhub.sinks.reporting import log
from dlrhub.store.sink_leases import SinkLeases
from dlrhub.store.sink_state import Fence, SinkStateUnavailable


def new_owner() -> str:
    """This worker's name in the lease table: host, pid, and a nonce against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Held:
    token: int
    deadline: float  # loop time
    timer: asyncio.TimerHandle
    task: asyncio.Task[None]


class LeaseKeeper:
    """Starts and stops this worker's runners as it takes and loses their leases."""

    def __init__(
        self,
        leases: SinkLeases,
        runners: Sequence[SinkRunner],
        fenced: dict[str, FencedSinkState],
        lease_seconds: float,
        *,
        force: bool = False,
    ) -> None:
        self.leases = leases
        self.owner = leases.owner
        self.runners = {runner.name: runner for runner in runners}
        self.fenced = fenced
        self.lease = lease_seconds
        self.force = force
        self.held: dict[str, Held] = {}
        self.deadlines_passed: dict[str, float] = {}  # sink -> loop time it was stopped at
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the last run of each runner
        self._handing_back: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._order = list(self.runners)
        self._loop = asyncio.get_running_loop()
        for name, state in fenced.items():
            state.on_lost = functools.partial(self.lose, name, "a write found another lease")

    async def keep(self) -> None:
        """Rounds every lease / 3 until `stop()`; a database that is down is tried again."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.lease / 3)
            if not self._stopping.is_set():
                try:
                    async with asyncio.timeout(self.lease):  # a database that does not answer
                        await self.round()
                except TimeoutError:
                    log.warning("sink worker %s: a lease round took over a lease", self.owner)
                except Exception:  # the deadlines still stop the runners; try again next round
                    log.exception("sink worker %s: a lease round failed", self.owner)

    async def round(self) -> None:
        try:
            live = await self.leases.heartbeat()
            await self._renew()
            share = math.ceil(len(self.runners) / live)
            staying = [sink for sink in self.held if sink not in self._handing_back]
            for sink in staying[share:]:  # in the background: a runner may take a while to stop
                task = asyncio.create_task(self.hand_back(sink), name=f"dlrhub-sink-{sink}-back")
                self._handing_back[sink] = task
                task.add_done_callback(functools.partial(self._handed_back, sink))
            if len(self.held) < share:
                await self._take(share)
            await self._take_orphans()
        except SinkStateUnavailable as error:
            log.warning("sink worker %s: cannot reach the sink leases: %s", self.owner, error)

    def _handed_back(self, sink: str, _task: asyncio.Task[None]) -> None:
        self._handing_back.pop(sink, None)

    async def _renew(self) -> None:
        if not self.held:
            return
        sent = self._loop.time()
        tokens = {sink: held.token for sink, held in self.held.items()}
        kept = await self.leases.renew(tokens)
        for sink, token in tokens.items():
            held = self.held.get(sink)
            if held is None or held.token != token:
                continue  # lost or handed back meanwhile
            if sink in kept:
                self._set_deadline(sink, held, sent + self.lease)
            else:
                self.lose(sink, "another worker holds its lease")

    async def _take(self, share: int) -> None:
        # Start at a different sink in each worker, so that they do not all race for the first.
        start = hash(self.owner) % len(self._order)
        for name in self._order[start:] + self._order[:start]:
            if len(self.held) >= share or self._stopping.is_set():
                return
            previous = self._tasks.get(name)
            if name in self.held or (previous is not None and not previous.done()):
                continue
            sent = self._loop.time()
            token = await self.leases.acquire(name, force=self.force)
            if token is not None and not self._stopping.is_set():
                self._start(name, token, sent + self.lease)

    async def _take_orphans(self) -> None:
        for name in sorted(await self.leases.expired() - set(self.held)):
            previous = self._tasks.get(name)
            if name not in self.runners or (previous is not None and not previous.done()):
                continue
            sent = self._loop.time()
            token = await self.leases.take_expired(name)
            if token is not None and not self._stopping.is_set():
                self._start(name, token, sent + self.lease)

    def _start(self, name: str, token: int, deadline: float) -> None:
        runner = self.runners[name]
        self.fenced[name].fence = Fence(self.owner, token)
        runner.control.reset()
        task = asyncio.create_task(runner.run(), name=f"dlrhub-sink-{name}")
        self._tasks[name] = task
        timer = self._loop.call_at(deadline, self._deadline_passed, name, token)
        self.held[name] = Held(token, deadline, timer, task)
        log.info("sink %s: delivered by this worker (%s, lease %d)", name, self.owner, token)

    def _set_deadline(self, sink: str, held: Held, deadline: float) -> None:
        held.timer.cancel()
        held.deadline = deadline
        held.timer = self._loop.call_at(deadline, self._deadline_passed, sink, held.token)

    def _deadline_passed(self, sink: str, token: int) -> None:
        held = self.held.get(sink)
        if held is not None and held.token == token:
            self.deadlines_passed[sink] = self._loop.time()
            self.lose(sink, f"no renewal within its lease ({self.lease:g}s)")

    def lose(self, sink: str, why: str) -> None:
        """Stop delivering `sink` now: its lease is, or may be, another worker's."""
        held = self.held.pop(sink, None)
        if held is None:
            return
        held.timer.cancel()
        if held.task is not asyncio.current_task():  # the runner's own LeaseLost stops it
            held.task.cancel()
        self.runners[sink].stats.state = "standby"
        log.warning("sink %s: stopped delivering on this worker (%s): %s", sink, self.owner, why)

    async def hand_back(self, sink: str, seconds: float = 10.0) -> None:
        """Stop the runner (its cursor committed), then release the lease for another worker."""
        held = self.held.get(sink)
        if held is None:
            return
        self.runners[sink].stop()
        _, pending = await asyncio.wait({held.task}, timeout=seconds)
        if pending:
            log.warning("sink %s did not stop in time; cancelling", sink)
            held.task.cancel()
        if self.held.get(sink) is not held:
            return  # lost meanwhile: the lease is not ours to release
        del self.held[sink]
        held.timer.cancel()
        self.runners[sink].stats.state = "standby"
        try:
            await self.leases.release(sink, held.token)
        except SinkStateUnavailable as error:
            log.warning("sink %s: lease not released (it expires instead): %s", sink, error)
            return
        log.info("sink %s: handed back by this worker (%s)", sink, self.owner)

    async def stop(self, seconds: float) -> None:
        """Stop every runner, commit, release every lease at once, and leave."""
        self._stopping.set()
        try:
            async with asyncio.timeout(seconds):
                await asyncio.gather(
                    *self._handing_back.values(),
                    *(
                        self.hand_back(sink, seconds * 0.8)
                        for sink in list(self.held)
                        if sink not in self._handing_back
                    ),
                    return_exceptions=True,
                )
                await self.leases.leave()
        except (TimeoutError, SinkStateUnavailable) as error:
            log.warning("sink worker %s: leases not all released: %s", self.owner, error)
        for sink in list(self.held):
            self.lose(sink, "stopping")
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 1.0)
