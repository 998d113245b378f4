"""Run a command inside the parts of a systemd unit's sandbox that need no systemd.

    python -m tests.unit_sandbox deploy/dlrhub.service COMMAND [ARGUMENT ...]

Applies the unit's `UMask=`, `MemoryDenyWriteExecute=` (as the kernel's
`PR_SET_MDWE`, Linux 6.3+, which refuses what systemd's seccomp rule refuses:
memory both writable and executable, and making memory executable) and
`SystemCallFilter=` with `SystemCallErrorNumber=EPERM` (a seccomp filter through
libseccomp, which systemd depends on; the groups are expanded by
`systemd-analyze syscall-filter`), then executes COMMAND. Its children inherit
all three, as the unit's processes do. Used by tests/test_deploy.py to show that
dlrhub works under the shipped unit where no systemd runs the tests. The rest of
the sandbox (mount, namespace, address family and capability rules) needs systemd
and is not applied here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """Each `Key=value` of the unit's `[Service]` section, every value of a repeated key."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def syscalls(name: str, seen: set[str] | None = None) -> set[str]:
    """The system calls of `name` (`@group` or a call), groups expanded."""
    if not name.startswith("@"):
        return {name}
    seen = set() if seen is None else seen
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#") and entry not in seen:
            seen.add(entry)
            names |= syscalls(entry, seen)
    return names


def allowed_syscalls(filters: list[str]) -> set[str]:
    """systemd's reading of `SystemCallFilter=` lines: an allow list, less `~` lines."""
    allowed: set[str] = set()
    for value in filters:
        deny = value.startswith("~")
        names = set().union(*(syscalls(name) for name in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def load_syscall_filter(allowed: set[str], error: int) -> None:
    seccomp = ctypes.CDLL("libseccomp.so.2")
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
    seccomp.seccomp_rule_add.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
    ]
    seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    context = seccomp.seccomp_init(SCMP_ACT_ERRNO | error)
    for name in sorted(allowed):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # a call this architecture does not have
            seccomp.seccomp_rule_add(context, SCMP_ACT_ALLOW, number, 0)
    if seccomp.seccomp_load(context) != 0:
        raise OSError("seccomp_load failed")


def enter(unit: Path) -> None:
    settings = unit_settings(unit)
    libc = ctypes.CDLL(None, use_errno=True)
    if "UMask" in settings:
        os.umask(int(settings["UMask"][-1], 8))
    memory_rule = settings.get("MemoryDenyWriteExecute", ["false"])[-1] == "true"
    if memory_rule and libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE) needs Linux 6.3 or newer")
    if "SystemCallFilter" in settings:
        error = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        load_syscall_filter(allowed_syscalls(settings["SystemCallFilter"]), error)


if __name__ == "__main__":
    enter(Path(sys.argv[1]))
    os.execv(sys.argv[2], sys.argv[2:])  # noqa: S606 (the command line as given)
