"""The statements a write transaction is made of, and how a backend drives one.

A write transaction is a generator that yields the statements it wants run and
receives each one's rows (`Transaction`), so that it is written once and each
backend runs it its own way (see `dlrhub/store/sql.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from dlrhub.event import format_time

T = TypeVar("T")


Rows = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Fetch:
    """Run a query; the transaction receives its rows."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Execute:
    """Run one statement; the transaction receives no rows."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    """Run one statement once per row of parameters."""

    sql: str
    rows: Sequence[Sequence[Any]]


Statement = Fetch | Execute | ExecuteMany
# Yields statements, is sent each one's rows (empty for Execute*), returns its result.
Transaction = Generator[Statement, Rows, T]


def run_transaction(transaction: Transaction[T], run: Callable[[Statement], Rows]) -> T:
    """Drive `transaction`, running each statement it yields with `run` (synchronous)."""
    try:
        statement = next(transaction)
        while True:
            statement = transaction.send(run(statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_transaction_async(
    transaction: Transaction[T], run: Callable[[Statement], Awaitable[Rows]]
) -> T:
    """`run_transaction` for a driver whose statements are awaited."""
    try:
        statement = next(transaction)
        while True:
            statement = transaction.send(await run(statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def now_text() -> str:
    return format_time(datetime.now(UTC))
