"""The rollups' folding process: `python -m dlrhub.store.fold_worker`.

Reads frames from stdin, each a pickled (`FoldRequest`, `Place`), and answers each on
stdout with a pickled (True, `Folded`) or (False, the error's text). A frame is
an 8-byte big-endian length and that many bytes. Ends at end of input: when the
process that started it closes the pipe or dies. Only dlrhub starts it, on
pipes it owns (dlrhub/store/folding.py): pickle is safe between the two.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import traceback
from typing import BinaryIO

from dlrhub.store.folding import HEADER, fold_request, write_frame

NICENESS = 10


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's bytes; None at a clean end of input."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    while (frame := read_frame(requests)) is not None:
        try:
            request, place = pickle.loads(frame)  # noqa: S301 (from the process that started us)
            answer: tuple[bool, object] = (True, fold_request(request, place))
        except Exception:  # a bug: told to the caller, who logs it; the next page goes on
            answer = (False, traceback.format_exc(limit=8))
        write_frame(answers, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


def main() -> None:
    # Ctrl-C in a terminal reaches the whole group: this one ends with its input instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Background work: on a busy machine the receivers and commits go first. Where the
    # sandbox forbids it (deploy/*.service filter @resources), at the same priority.
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # Answers go on a copy of stdout; anything printed by mistake goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
