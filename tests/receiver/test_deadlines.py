"""`Deadlines`: one timer for many waits that share a timeout."""

from __future__ import annotations

import asyncio

from dlrhub.receiver.deadlines import Deadlines
from tests.waiting import eventually_async


async def test_only_what_is_still_waited_on_at_its_deadline_expires() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(0.2, expired.append)
    first = deadlines.add("first", loop)
    deadlines.add("second", loop)
    assert deadlines.discard(first)  # done in time
    await eventually_async(lambda: expired, 5)
    assert expired == ["second"]
    third = deadlines.add("third", loop)  # the timer is armed again after it fired
    await eventually_async(lambda: len(expired) == 2, 5)
    assert expired == ["second", "third"]
    assert not deadlines.discard(third)  # it had expired
    assert len(deadlines) == 0


async def test_a_later_wait_keeps_its_own_full_timeout() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    deadlines: Deadlines[str] = Deadlines(0.3, expired.append)
    early = deadlines.add("early", loop)
    await asyncio.sleep(0.2)
    deadlines.add("late", loop)
    deadlines.discard(early)
    await eventually_async(lambda: expired, 5)  # the timer fired for "early", re-armed
    assert expired == ["late"]
    started = loop.time()
    deadlines.add("last", loop)
    await eventually_async(lambda: len(expired) == 2, 5)
    assert loop.time() - started >= 0.3 - 0.01  # not earlier than its own deadline
