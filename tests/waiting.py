"""Wait for events, not time: the one way a test waits for something to become true.

`eventually(predicate, seconds)` calls `predicate` until it returns something truthy and
returns that; after `seconds` it fails with a message that says what it waited
for (`what`, or else where the predicate is written). Async tests use
`await eventually_async(...)`, whose predicate may also be a coroutine function, so
the event loop keeps running the code the test waits for.

A check that something does NOT happen does not sleep and look: it makes a later event
happen (another callback, more events) and waits for that one, which proves that time
passed, then asserts the first effect is absent.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 30.0
INTERVAL = 0.02

Description = str | Callable[[], str] | None


def eventually(
    predicate: Callable[[], Any], seconds: float = DEFAULT_TIMEOUT, what: Description = None
) -> Any:
    """For sync tests: poll `predicate` until it is truthy; return what it returned."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(timed_out(predicate, seconds, what))
        time.sleep(INTERVAL)


async def eventually_async(
    predicate: Callable[[], Any | Awaitable[Any]],
    seconds: float = DEFAULT_TIMEOUT,
    what: Description = None,
) -> Any:
    """For async tests: poll `predicate` (sync or async) until it is truthy; return it."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(timed_out(predicate, seconds, what))
        await asyncio.sleep(INTERVAL)


def timed_out(predicate: Callable[..., Any], seconds: float, what: Description) -> str:
    if callable(what):
        what = what()
    return f"timed out after {seconds:g}s waiting for {what or describe(predicate)}"


def describe(predicate: Callable[..., Any]) -> str:
    """`len(x) == 3` from `lambda: len(x) == 3`, or the function's name, with where it is."""
    code = getattr(predicate, "__code__", None)
    if code is None:
        return repr(predicate)
    where = f"{Path(code.co_filename).name}:{code.co_firstlineno}"
    name = getattr(predicate, "__name__", "")
    if name != "<lambda>":
        return f"{name}() ({where})"
    try:
        source = " ".join(inspect.getsource(predicate).split())
    except (OSError, TypeError):
        return f"a lambda ({where})"
    _, found, body = source.partition("lambda:")
    return f"{expression(body) if found else source} ({where})"


def expression(text: str) -> str:
    """The lambda's body: `text` up to the comma or bracket that ends it."""
    depth = 0
    for index, character in enumerate(text):
        if character in "([{":
            depth += 1
        elif depth == 0 and character in ",)]}":
            return text[:index].strip()
        elif character in ")]}":
            depth -= 1
    return text.strip()
