"""One delivering process per SQLite sink state: an OS file lock beside the SQLite file.

Two processes delivering from the same sink cursors both send every event (a
worker next to a `serve` with sinks sent 11,531 duplicates for 11,531 events).
So whatever delivers (`dlrhub worker`, `dlrhub serve` unless `--no-sinks`)
first takes an exclusive `flock` on `<SQLite file>.sinks.lock`, by default
`data_dir/dlrhub.sqlite3.sinks.lock`, and a second one is refused at start with
a message naming the holder's pid and command line, which the holder keeps in
that file. Control commands (`sinks pause`, `replay`, `dlq retry`) only write
state that the deliverer reads, and take no lock.

Why an OS lock and not a pid file: the kernel drops the lock when its holder
dies however it dies (SIGKILL, the OOM killer), and a pid that was reused by
another program cannot fool it. Why `flock` and not `fcntl`/`lockf`: POSIX
record locks belong to the process (a second open in the same process does not
conflict, and closing any descriptor of the file releases them), while a
`flock` belongs to the open file, so two services in one process conflict too.
The file is never deleted: deleting a lock file lets two processes lock two
different files of the same name.

On PostgreSQL the sink state is in the database and any number of workers
share the sinks through leases (`leases.py`), so no lock is taken there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import sys
from pathlib import Path

from dlrhub.private_files import FILE_MODE, make_private_directory

COMMAND_LINE_LIMIT = 300


class DeliveryRefused(Exception):
    """This process may not deliver from that sink state; the message says why, in one line."""


def lock_path(state_path: Path) -> Path:
    """The lock file of the sink state kept in the SQLite file `state_path`."""
    return state_path.with_name(f"{state_path.name}.sinks.lock")


class DelivererLock:
    """The exclusive right to deliver from one sink state, held until `release` or exit."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path.absolute()  # the message is read from anywhere
        self.path = lock_path(self.state_path)
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock, or raise `DeliveryRefused` naming its holder; never waits."""
        if self._descriptor is not None:
            return
        try:
            make_private_directory(self.path.parent)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise DeliveryRefused(
                f"cannot open the sinks' lock file {self.path}: {error.strerror}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise DeliveryRefused(
                f"the sinks of {self.state_path} are already delivered by {holder};"
                f" only one process may deliver them (lock file {self.path}); stop that one"
                " first, and run 'dlrhub serve --no-sinks' beside it"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()} {_command_line()}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)  # no holder to name any more
        os.close(descriptor)  # the only descriptor of this open file: the lock goes with it


def _read_holder(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():  # it took the lock a moment ago and has not written yet
        return "another process"
    return f"process {pid} ({command})" if command else f"process {pid}"


def _command_line() -> str:
    """This process's command, on one line, as a user would recognize it."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":
        program = "python -m dlrhub"
    line = " ".join([program, shlex.join(sys.argv[1:])]).strip()
    line = " ".join(line.split())  # no newline may split the message
    if len(line) > COMMAND_LINE_LIMIT:
        line = line[: COMMAND_LINE_LIMIT - 3] + "..."
    return line
