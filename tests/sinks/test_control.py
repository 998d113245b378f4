"""`dlrhub.sinks.control`: a held (paused or disabled) runner waits for a resume, not in a spin."""

from __future__ import annotations

import asyncio
from typing import Any

from dlrhub.sinks.control import Control
from dlrhub.sinks.reporting import SinkStats


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_held_runner_waits_until_resumed() -> None:
    state: Any = None  # apply() never touches the state store
    control = Control("s", state, SinkStats())
    control.apply(True, None)
    waiting = asyncio.create_task(control.wait_while_held(60))
    await _turns(20)
    assert not waiting.done()  # before the fix, it returned at once: a busy loop while paused
    control.apply(False, None)
    await asyncio.wait_for(waiting, 5)


async def test_a_disabled_runner_waits_until_stopped() -> None:
    state: Any = None
    control = Control("s", state, SinkStats())
    control.apply(False, "gone")
    waiting = asyncio.create_task(control.wait_while_held(60))
    await _turns(20)
    assert not waiting.done()
    control.stop()
    await asyncio.wait_for(waiting, 5)
