"""`jsonl` and `stdout` sinks: lines on disk (fsynced, rotated, never torn) and on stdout."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from dlrhub.sinks.jsonl import JsonlSink
from tests.sinks.conftest import (
    assert_per_message_order,
    harness,
    ingest,
    make_events,
    sink_config,
)
from tests.waiting import eventually_async


def read_lines(directory: Path) -> list[dict[str, object]]:
    lines = []
    for path in sorted(
        directory.glob("events*.jsonl"), key=lambda p: (p.name == "events.jsonl", p.name)
    ):
        written = path.read_bytes()
        # Read while the sink appends: a line is whole once its newline is written.
        lines += [orjson.loads(line) for line in written[: written.rfind(b"\n") + 1].splitlines()]
    return lines


def lines_written(directory: Path) -> int:
    try:
        return len(read_lines(directory))
    except FileNotFoundError:  # renamed by a rotation between glob and read
        return 0


async def test_jsonl_appends_every_event_and_rotates_by_size(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = sink_config(
        tmp_path,
        f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{out / "events.jsonl"}"\n'
        "rotate_bytes = 200000\nbatch_size = 100\n",
    )
    events = make_events(3000)
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: lines_written(out) >= 3000)
    lines = read_lines(out)
    assert [line["id"] for line in lines] == [event.id for event in events]
    assert_per_message_order(lines)
    files = list(out.glob("events*.jsonl"))
    assert len(files) > 3
    assert all(path.stat().st_size <= 200_000 for path in files)


async def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id":"whole"}\n{"id":"torn')
    config = sink_config(tmp_path, f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{path}"\n')
    sink = JsonlSink(config.sinks[0])
    event = make_events(1)[0]
    await sink.deliver([event])
    await sink.close()
    assert path.read_bytes().splitlines() == [b'{"id":"whole"}', event.to_json()]


async def test_stdout_prints_one_json_line_per_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sink_config(tmp_path, '[[sinks]]\nname = "print"\nkind = "stdout"\n')
    events = make_events(20)
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, events)
        await eventually_async(lambda: service.runners[0].stats.delivered == 20)
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [item["id"] for item in printed] == [event.id for event in events]


def rotated_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("events.*.jsonl"))


async def test_jsonl_rotates_when_the_utc_day_changes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id":"yesterday"}\n')
    yesterday = path.stat().st_mtime - 86_400
    os.utime(path, (yesterday, yesterday))
    config = sink_config(
        tmp_path,
        f'[[sinks]]\nname = "file"\nkind = "jsonl"\npath = "{path}"\nrotate_daily = true\n',
    )
    sink = JsonlSink(config.sinks[0])
    event = make_events(1)[0]
    await sink.deliver([event])
    await sink.close()
    assert [p.read_bytes() for p in rotated_files(tmp_path)] == [b'{"id":"yesterday"}\n']
    assert path.read_bytes().splitlines() == [event.to_json()]
