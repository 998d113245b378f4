"""States that advance with time since the send, not one per query.

A fake message answers `states[0]` when it is sent, `states[1]` once
`step_seconds` have passed, and so on; after the last step it answers the last
state forever. `step_seconds` is one duration for every step or one per step
(the last one repeats). Because the answer depends on the clock and not on how
often it is asked, a client that polls too often shows it: its extra queries
answer the same state again, and every answer is kept in `answers`, so a test
can count them and see any query made after the final answer.

`clock` is a function returning seconds (`time.monotonic` by default); a test
that wants to move time itself passes a `ManualClock`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Clock = Callable[[], float]
StepSeconds = float | Sequence[float]

DEFAULT_STEP_SECONDS = 0.5  # fast for tests, slow enough that a 50 ms poll sees each state


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def monotonic() -> float:
    return time.monotonic()


def state_index(elapsed: float, steps: int, step_seconds: StepSeconds) -> int:
    """Which of `steps` states a message is in `elapsed` seconds after its send."""
    durations = [step_seconds] if isinstance(step_seconds, int | float) else list(step_seconds)
    index = 0
    while index < steps - 1:
        duration = durations[min(index, len(durations) - 1)]
        if elapsed < duration:
            break
        elapsed -= duration
        index += 1
    return index


@dataclass(frozen=True, slots=True)
class Answer:
    at: float  # the fake's clock when it answered
    state: str
    final: bool  # the last state of the progression


@dataclass
class Timeline:
    """One message's progression: `started` is None while it is held (UVox without credit)."""

    states: tuple[str, ...]
    started: float | None
    answers: list[Answer] = field(default_factory=list)

    def state(self, now: float, step_seconds: StepSeconds) -> str:
        if self.started is None:
            return self.states[0]
        index = state_index(now - self.started, len(self.states), step_seconds)
        return self.states[index]

    def is_final(self, now: float, step_seconds: StepSeconds) -> bool:
        if self.started is None:
            return len(self.states) == 1
        elapsed = now - self.started
        return state_index(elapsed, len(self.states), step_seconds) == len(self.states) - 1

    def answer(self, now: float, step_seconds: StepSeconds, state: str | None = None) -> str:
        """The state to answer now (or `state`, a fault's), kept in `answers`."""
        final = state is None and self.is_final(now, step_seconds)
        answered = state if state is not None else self.state(now, step_seconds)
        self.answers.append(Answer(now, answered, final))
        return answered

    @property
    def queries(self) -> int:
        return len(self.answers)

    def queried_after_final(self) -> int:
        """How many answers came after the first final one (0 for a well-behaved poller)."""
        for index, answer in enumerate(self.answers):
            if answer.final:
                return len(self.answers) - index - 1
        return 0
