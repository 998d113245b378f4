"""What `dlrhub sinks|replay|dlq` do, apart from parsing arguments and printing.

These work on the durable state only, so they act on a running `serve` or
`worker` in another process: the runner sees a pause, a queued replay or a
queued dead-letter retry within its control interval (half a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dlrhub.event import format_time
from dlrhub.sinks.lag import head_seq
from dlrhub.sinks.settings import SinkConfig, SinksSettings
from dlrhub.store.base import EventFilter, Store
from dlrhub.store.sink_state import ReplayJob, SinkState, SinkStateStore


class UnknownSink(LookupError):
    """The name is not a configured sink."""


@dataclass(frozen=True, slots=True)
class SinkReport:
    name: str
    kind: str
    state: str  # ok, idle, failing, paused, disabled, new, unconfigured
    after_seq: int
    lag_events: int
    lag_seconds: float
    delivered: int
    dead_letters: int
    last_error: str | None
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    disabled_reason: str | None
    replays_pending: int
    lease_owner: str | None = None  # the worker delivering it now

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "after_seq": self.after_seq,
            "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "delivered": self.delivered,
            "dead_letters": self.dead_letters,
            "last_error": self.last_error,
            "last_error_at": format_time(self.last_error_at) if self.last_error_at else None,
            "last_delivered_at": (
                format_time(self.last_delivered_at) if self.last_delivered_at else None
            ),
            "disabled_reason": self.disabled_reason,
            "replays_pending": self.replays_pending,
            "lease_owner": self.lease_owner,
        }


def sink_config(config: SinksSettings, name: str) -> SinkConfig:
    for sink in config.sinks:
        if sink.name == name:
            return sink
    names = ", ".join(sink.name for sink in config.sinks) or "none configured"
    raise UnknownSink(f"no sink named {name!r} (sinks: {names})")


async def ensure_state(store: Store, state: SinkStateStore, sink: SinkConfig) -> SinkState:
    """The sink's state, created where the sink would start if it never ran."""
    current = await state.state(sink.name)
    if current is not None:
        return current
    start_after = await head_seq(store) if sink.start == "end" else 0
    return await state.ensure(sink.name, start_after=start_after)


async def sink_reports(
    config: SinksSettings, store: Store, state: SinkStateStore
) -> list[SinkReport]:
    head = await head_seq(store)
    states = {current.sink: current for current in await state.states()}
    reports = []
    now = datetime.now(UTC)
    for sink in config.sinks:
        current = states.pop(sink.name, None)
        reports.append(await _report(store, sink.name, sink.kind, current, head, now))
    for name, current in sorted(states.items()):
        reports.append(await _report(store, name, "-", current, head, now, configured=False))
    return reports


async def _report(
    store: Store,
    name: str,
    kind: str,
    current: SinkState | None,
    head: int,
    now: datetime,
    *,
    configured: bool = True,
) -> SinkReport:
    if current is None:
        return SinkReport(
            name, kind, "new", 0, head, await _age_after(store, 0, now), 0, 0,
            None, None, None, None, 0,
        )  # fmt: skip
    lag = max(head - current.after_seq, 0)
    # A delivery after the error clears it: `sinks status` shows what is wrong now.
    error_cleared = (
        current.last_error_at is not None
        and current.last_delivered_at is not None
        and current.last_delivered_at >= current.last_error_at
    )
    if not configured:
        label = "unconfigured"
    elif current.disabled_reason:
        label = "disabled"
    elif current.paused:
        label = "paused"
    elif current.last_error_at is not None and (
        current.last_delivered_at is None or current.last_error_at > current.last_delivered_at
    ):
        label = "failing"
    else:
        label = "ok" if lag else "idle"
    return SinkReport(
        name=name,
        kind=kind,
        state=label,
        after_seq=current.after_seq,
        lag_events=lag,
        lag_seconds=await _age_after(store, current.after_seq, now) if lag else 0.0,
        delivered=current.delivered,
        dead_letters=current.dead_letters,
        last_error=None if error_cleared else current.last_error,
        last_error_at=None if error_cleared else current.last_error_at,
        last_delivered_at=current.last_delivered_at,
        disabled_reason=current.disabled_reason,
        replays_pending=current.replays_pending,
        lease_owner=current.lease_owner,
    )


async def _age_after(store: Store, after_seq: int, now: datetime) -> float:
    oldest = await store.events(EventFilter(after_seq=after_seq, limit=1))
    return max((now - oldest[0].received_at).total_seconds(), 0.0) if oldest else 0.0


async def seq_before(store: Store, moment: datetime) -> int:
    """The last seq received before `moment`: replaying after it covers `moment` onwards.

    A binary search over seq on `received_at`, which grows with seq up to the
    clock skew between concurrent requests (milliseconds).
    """
    low, high = 0, await head_seq(store)  # answer in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        found = await store.events(EventFilter(after_seq=middle - 1, limit=1))
        if found and found[0].received_at < moment:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass(frozen=True, slots=True)
class ReplayRange:
    """The events a replay would re-deliver: `after_seq < seq <= until_seq`."""

    after_seq: int
    until_seq: int
    events: int  # in the log now (before the sink's filter), pruned ones left out


async def replay_range(
    store: Store,
    *,
    after_seq: int | None = None,
    since: datetime | None = None,
    until_seq: int | None = None,
) -> ReplayRange:
    """What `queue_replay` would queue (the preview of `POST /v1/sinks/{name}/replay`)."""
    start = after_seq if after_seq is not None else 0
    if since is not None:
        start = max(start, await seq_before(store, since))
    end = await head_seq(store)
    if until_seq is not None:
        end = min(end, until_seq)
    if end <= start:
        return ReplayRange(start, start, 0)
    # Sequence numbers are dense, but retention may have pruned the oldest events.
    first = await store.events(EventFilter(after_seq=start, limit=1))
    events = end - max(start, first[0].seq - 1) if first and first[0].seq <= end else 0
    return ReplayRange(start, end, events)


async def queue_replay(
    store: Store,
    state: SinkStateStore,
    sink: SinkConfig,
    *,
    after_seq: int | None = None,
    since: datetime | None = None,
    until_seq: int | None = None,
) -> ReplayJob | None:
    """Queue a re-delivery of `after_seq < seq <= until_seq` (until: the log's head now)."""
    await ensure_state(store, state, sink)
    wanted = await replay_range(store, after_seq=after_seq, since=since, until_seq=until_seq)
    if wanted.until_seq <= wanted.after_seq:
        return None
    return await state.add_replay(sink.name, wanted.after_seq, wanted.until_seq)


async def set_paused(
    store: Store, state: SinkStateStore, sink: SinkConfig, *, paused: bool
) -> None:
    await ensure_state(store, state, sink)
    await state.set_paused(sink.name, paused)


async def retry_dead_letters(
    store: Store, state: SinkStateStore, sink: SinkConfig, ids: Sequence[int] | None
) -> int:
    await ensure_state(store, state, sink)
    return await state.request_retry(sink.name, list(ids) if ids is not None else None)


def format_age(seconds: float) -> str:
    if seconds < 1:
        return "0s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
