"""Short names are decoded once; long ones every time, so the cache holds no large string."""

from __future__ import annotations

from dlrhub.name_cache import LONGEST_CACHED, cached_for_short_names


def test_short_names_are_remembered_and_long_ones_are_not() -> None:
    calls: list[str] = []

    @cached_for_short_names
    def upper(name: str) -> str:
        calls.append(name)
        return name.upper()

    short, long = "token", "x" * (LONGEST_CACHED + 1)
    assert [upper(short), upper(short), upper(long), upper(long)] == [
        "TOKEN",
        "TOKEN",
        long.upper(),
        long.upper(),
    ]
    assert calls == [short, long, long]
