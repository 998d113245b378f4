"""The one-deliverer lock in one process; between processes: test_serve_e2e.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dlrhub.sinks.deliverer_lock import DelivererLock, DeliveryRefused
from dlrhub.sinks.service import SinkService
from tests.sinks.conftest import sink_config

STDOUT_SINK = '[[sinks]]\nname = "out"\nkind = "stdout"\n'


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    state = tmp_path / "data" / "dlrhub.sqlite3"
    first, second = DelivererLock(state), DelivererLock(state)
    first.acquire()
    assert first.path == tmp_path / "data" / "dlrhub.sqlite3.sinks.lock"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    with pytest.raises(DeliveryRefused) as refused:
        second.acquire()  # flock: even an open file of the same process conflicts
    message = str(refused.value)
    assert f"process {os.getpid()} (" in message
    assert str(first.path) in message and str(state) in message
    assert "\n" not in message
    first.release()
    assert first.path.read_text() == "", "a released lock names no holder"
    second.acquire()
    assert second.path.read_text().startswith(f"{os.getpid()} ")
    second.release()


def test_a_holder_that_has_not_written_yet_is_another_process(tmp_path: Path) -> None:
    import fcntl

    state = tmp_path / "dlrhub.sqlite3"
    path = DelivererLock(state).path
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        with pytest.raises(DeliveryRefused, match="delivered by another process;"):
            DelivererLock(state).acquire()
    finally:
        os.close(descriptor)
    after = DelivererLock(state)
    after.acquire()  # the lock went with the descriptor
    after.release()


async def test_a_second_service_on_the_same_data_directory_does_not_start(
    tmp_path: Path,
) -> None:
    config = sink_config(tmp_path, STDOUT_SINK)
    first, second = SinkService(config), SinkService(config)
    await first.start()
    try:
        with pytest.raises(DeliveryRefused):
            await second.start()
        assert second.runners == [] and not second.lock.held
    finally:
        await first.stop()
    await second.start()  # stop released it
    await second.stop()
    other = sink_config(tmp_path / "other", STDOUT_SINK)  # another data directory
    await first.start()
    try:
        elsewhere = SinkService(other)
        await elsewhere.start()
        await elsewhere.stop()
    finally:
        await first.stop()
