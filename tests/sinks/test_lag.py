"""Finding the head of the log, which lag and `start = "end"` rely on."""

from __future__ import annotations

from pathlib import Path

from dlrhub.sinks.lag import head_seq
from tests.sinks.conftest import harness, ingest, make_events, sink_config

SINK = """
[[sinks]]
name = "fake"
kind = "stdout"
"""


async def test_head_seq_finds_the_last_event(tmp_path: Path, store_toml: str) -> None:
    config = sink_config(tmp_path, SINK, store=store_toml)
    async with harness(config) as h:
        assert await head_seq(h.store) == 0
        await ingest(h.store, make_events(1234))
        assert await head_seq(h.store) == 1234
        assert await head_seq(h.store, known=1000) == 1234
