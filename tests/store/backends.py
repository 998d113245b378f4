"""Make stores of either backend, so every store test runs against both."""

from __future__ import annotations

from collections.abc import Callable

from dlrhub.store import SQLStore

StoreMaker = Callable[..., SQLStore]  # (on_commit=...) -> an unopened store
