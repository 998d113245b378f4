"""Files and directories only dlrhub's own user may read: they hold receipts and secrets.

| what dlrhub creates                                  | mode |
|------------------------------------------------------|------|
| the data directory, a JSONL sink's directory, ...    | 0700 |
| `admin.token`, `source-*.token`                      | 0600 |
| the SQLite database; its `-wal`, `-shm`, `-journal`  | 0600 |
| a JSONL sink's file (rotated files keep the mode)    | 0600 |

The modes are given where each file or directory is created, so they hold
whatever the process umask is (a stricter umask only takes bits away): a
library does not change the umask of the process it runs in. SQLite creates
the `-wal`, `-shm` and `-journal` files with the mode of the database file
(os_unix.c, `findCreateFileMode` and `unixOpenSharedMemory`), so the database
file is created here, empty and 0600, before SQLite opens it: an empty file is
an empty database. Files and directories that already exist keep their mode,
which is the operator's to choose (the systemd unit's `StateDirectoryMode`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private_directory(path: Path) -> None:
    """`path` and each missing parent, created 0700; existing ones are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=DIRECTORY_MODE)


def create_private_file(path: Path) -> bool:
    """Create `path` empty and 0600 (and its directory) unless it exists; whether it did."""
    make_private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def open_private_append(path: Path) -> int:
    """A descriptor reading and appending to `path`, created 0600 (its directory 0700)."""
    make_private_directory(path.parent)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)


def write_private_file(path: Path, text: str) -> None:
    """Create `path` 0600 holding `text`; fails if it exists (FileExistsError)."""
    make_private_directory(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
