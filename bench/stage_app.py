"""dlrhub's receiver with its later stages cut off, served by `bench/stages.py`.

`BENCH_STAGE` says how far a callback goes (`BENCH_CONFIG` is the dlrhub.toml):

- `receive`: the `/hooks/` path, token check, body, redaction, dedupe hash,
  metrics and the JSON answer; the normalizer returns no event and nothing is stored;
- `normalize`: the same plus 360NRS normalizing; the store answers without writing.

The full path (`dlrhub serve`, with the durable SQLite commit) is the third stage.
Only for measuring: it replaces the 360NRS normalizer in this process's registry.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from dlrhub.app import create_app
from dlrhub.config import load_config
from dlrhub.event import Event, RawCallback
from dlrhub.normalizers import SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.store import Accept, WriteItem, WriteResult


class AnsweringStore:
    """A store that answers every write at once and keeps nothing."""

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def write(self, item: WriteItem) -> WriteResult:
        return WriteResult("stored", item.events if isinstance(item, Accept) else [])


def no_events(raw: RawCallback, options: SourceOptions) -> list[Event]:
    return []


stage = os.environ.get("BENCH_STAGE", "normalize")
if stage not in ("receive", "normalize"):
    raise SystemExit(f"BENCH_STAGE must be receive or normalize, not {stage!r}")
if stage == "receive":
    PROVIDERS["nrs360"] = dataclasses.replace(PROVIDERS["nrs360"], normalize=no_events)  # type: ignore[index]
app = create_app(
    load_config(Path(os.environ["BENCH_CONFIG"]), env={}),
    store=AnsweringStore(),  # type: ignore[arg-type]
)
