"""A cache for decoding parameter names, which every callback repeats.

Callbacks carry the same few field names again and again (`id`, `event`,
`token`, ...), so decoding or classifying each once saves work on the hot path.
Only short names are cached: a cache of whatever long names a caller invents
would hold on to their memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

Name = TypeVar("Name", str, bytes)
Result = TypeVar("Result")

LONGEST_CACHED = 64
CACHE_SIZE = 1024


def cached_for_short_names(function: Callable[[Name], Result]) -> Callable[[Name], Result]:
    """`function`, remembered for arguments of at most `LONGEST_CACHED` characters."""
    remembered = functools.lru_cache(maxsize=CACHE_SIZE)(function)

    @functools.wraps(function)
    def call(name: Name) -> Result:
        return remembered(name) if len(name) <= LONGEST_CACHED else function(name)

    return call
