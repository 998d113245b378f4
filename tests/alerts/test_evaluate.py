"""Each alert kind opens on an injected condition and resolves after recovery (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dlrhub.event import Status
from dlrhub.store import EventFilter
from tests.alerts.conftest import NOW, configured, onurix_account, world

AT = NOW.replace(minute=5)  # in the hour the evaluator looks at


async def test_delivery_rate_below_opens_then_resolves_with_its_event(tmp_path: Path) -> None:
    rule = {"name": "rate", "kind": "delivery_rate_below", "below": 0.9}
    async with world(configured(tmp_path, [rule])) as w:
        evaluator = w.evaluator()
        await w.send(20, Status.DELIVERED, at=AT)
        await w.send(10, Status.UNDELIVERED, at=AT)
        (opened,) = (await evaluator.run_once()).transitions or []
        assert (opened.rule, opened.state, opened.group) == ("rate", "open", "")
        assert opened.value is not None and round(opened.value, 3) == 0.667
        assert "66.7% of 30 settled messages" in opened.message
        assert (await evaluator.run_once()).transitions == []  # still open, not again

        await w.send(100, Status.DELIVERED, at=AT)  # 120 of 130: 92 %
        w.now += timedelta(minutes=1)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert (resolved.id, resolved.state) == (opened.id, "resolved")
        assert resolved.resolved_at == w.now
        events = await w.alert_events()
        assert [(e.source, e.provider, e.extra["state"]) for e in events] == [
            ("dlrhub", "dlrhub", "open"),
            ("dlrhub", "dlrhub", "resolved"),
        ]
        assert events[0].extra["rule"] == "rate" and events[0].extra["threshold"] == 0.9
        assert [a.state for a in await w.alerts_now()] == ["resolved"]


async def test_too_few_messages_neither_open_nor_resolve(tmp_path: Path) -> None:
    rule = {"name": "rate", "kind": "delivery_rate_below", "below": 0.9, "min_messages": 20}
    async with world(configured(tmp_path, [rule])) as w:
        await w.send(3, Status.FAILED, at=AT)
        assert (await w.evaluator().run_once()).transitions == []


async def test_delivery_rate_below_per_group(tmp_path: Path) -> None:
    rule = {
        "name": "rate",
        "kind": "delivery_rate_below",
        "below": 0.9,
        "group_by": ["provider"],
        "min_messages": 5,
    }
    async with world(configured(tmp_path, [rule])) as w:
        await w.send(10, Status.DELIVERED, at=AT, provider="nrs360")
        await w.send(10, Status.FAILED, at=AT, provider="twilio")
        (opened,) = (await w.evaluator().run_once()).transitions or []
        assert opened.group == "provider=twilio"
        assert opened.message.startswith("rate [provider=twilio]: delivery rate 0.0%")


async def test_delivery_rate_drop_against_the_same_hours_of_the_week_before(
    tmp_path: Path,
) -> None:
    rule = {"name": "drop", "kind": "delivery_rate_drop", "points": 10}
    async with world(configured(tmp_path, [rule])) as w:
        for days in range(1, 8):  # the usual: 95 %
            await w.send(19, Status.DELIVERED, at=AT - timedelta(days=days))
            await w.send(1, Status.UNDELIVERED, at=AT - timedelta(days=days))
        await w.send(16, Status.DELIVERED, at=AT)  # today 80 %: 15 points under
        await w.send(4, Status.UNDELIVERED, at=AT)
        evaluator = w.evaluator()
        (opened,) = (await evaluator.run_once()).transitions or []
        assert opened.state == "open" and opened.value == 0.8
        assert opened.threshold == 0.85
        assert "15.0 points under the same hours of the 7 days before (95.0%)" in opened.message

        await w.send(60, Status.DELIVERED, at=AT)  # 76 of 80: 95 %
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved" and resolved.last_value == 0.95


async def test_ttr_p90_above(tmp_path: Path) -> None:
    rule = {"name": "slow", "kind": "ttr_p90_above", "seconds": 30}
    async with world(configured(tmp_path, [rule])) as w:
        await w.send(30, Status.DELIVERED, at=AT, after=90)
        evaluator = w.evaluator()
        (opened,) = (await evaluator.run_once()).transitions or []
        assert opened.value is not None and 85 < opened.value < 95
        await w.send(300, Status.DELIVERED, at=AT, after=2)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved"
        assert resolved.last_value is not None and resolved.last_value < 3


async def test_quarantine_growing_opens_then_resolves_once_it_stops_growing(
    tmp_path: Path,
) -> None:
    rule = {"name": "quarantine", "kind": "quarantine_growing", "window": "10m"}
    async with world(configured(tmp_path, [rule])) as w:
        evaluator = w.evaluator()
        assert (await evaluator.run_once()).transitions == []  # 0 pending
        await w.quarantine(2)
        w.now += timedelta(minutes=1)
        (opened,) = (await evaluator.run_once()).transitions or []
        assert opened.message == "quarantine: 2 quarantine entries pending, 2 more than 10m ago"
        w.now += timedelta(minutes=5)
        assert (await evaluator.run_once()).transitions == []
        w.now += timedelta(minutes=6)  # 10 minutes without a new entry
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved"


async def test_dead_letters_growing_per_sink(tmp_path: Path) -> None:
    rule = {"name": "dlq", "kind": "dead_letters_growing", "window": "5m"}
    sink = {"name": "audit", "kind": "jsonl", "path": str(tmp_path / "audit.jsonl")}
    async with world(configured(tmp_path, [rule], sinks=[sink])) as w:
        evaluator = w.evaluator()
        await w.sink_state.ensure("audit", start_after=0)
        await w.send(1, Status.DELIVERED, at=AT)
        assert (await evaluator.run_once()).transitions == []
        (event, *_) = await w.store.events(EventFilter())
        await w.sink_state.add_dead_letter("audit", event, "HTTP 400", 1)
        w.now += timedelta(minutes=1)
        (opened,) = (await evaluator.run_once()).transitions or []
        assert (opened.group, opened.value) == ("sink=audit", 1.0)
        w.now += timedelta(minutes=6)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved"


async def test_account_paused_opens_and_resolves_on_resume(tmp_path: Path) -> None:
    rule = {"name": "paused", "kind": "account_paused"}
    async with world(configured(tmp_path, [rule], accounts=[onurix_account("onx")])) as w:
        evaluator = w.evaluator()
        assert (await evaluator.run_once()).transitions == []
        now = datetime.now(UTC)
        await w.tracking.pause("onx", "HTTP 401: bad key", now, now + timedelta(hours=1))
        (opened,) = (await evaluator.run_once()).transitions or []
        assert opened.message == "paused [account=onx]: poller paused: HTTP 401: bad key"
        await w.tracking.resume("onx")
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved"


async def test_sink_lagging_opens_then_resolves_when_it_catches_up(tmp_path: Path) -> None:
    rule = {"name": "lag", "kind": "sink_lagging", "minutes": 10}
    sink = {"name": "audit", "kind": "jsonl", "path": str(tmp_path / "audit.jsonl")}
    async with world(configured(tmp_path, [rule], sinks=[sink])) as w:
        await w.sink_state.ensure("audit", start_after=0)
        await w.send(1, Status.DELIVERED, at=datetime.now(UTC) - timedelta(minutes=20))
        evaluator = w.evaluator()
        (opened,) = (await evaluator.run_once()).transitions or []
        assert opened.group == "sink=audit"
        assert opened.value is not None and opened.value >= 19
        head = max(event.seq for event in await w.store.events(EventFilter()))
        await w.sink_state.advance("audit", head, delivered=2, delivered_at=datetime.now(UTC))
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.state == "resolved"


async def test_an_event_not_written_is_written_at_the_next_pass_once(tmp_path: Path) -> None:
    rule = {"name": "paused", "kind": "account_paused"}
    async with world(configured(tmp_path, [rule], accounts=[onurix_account("onx")])) as w:
        now = datetime.now(UTC)
        await w.tracking.pause("onx", "HTTP 401", now, now + timedelta(hours=1))
        await w.store.close()  # the log does not take writes
        (opened,) = (await w.evaluator().run_once()).transitions or []
        await w.store.open()
        assert await w.alert_events() == []
        assert (await w.evaluator().run_once()).transitions == []
        assert [e.extra["alert_id"] for e in await w.alert_events()] == [opened.id]
        await w.evaluator().run_once()
        assert len(await w.alert_events()) == 1


async def test_an_alert_of_a_rule_no_longer_configured_resolves(tmp_path: Path) -> None:
    rule = {"name": "paused", "kind": "account_paused"}
    async with world(configured(tmp_path, [rule], accounts=[onurix_account("onx")])) as w:
        now = datetime.now(UTC)
        await w.tracking.pause("onx", "HTTP 401", now, now + timedelta(hours=1))
        await w.evaluator().run_once()
        w.config = configured(tmp_path, [], accounts=[onurix_account("onx")])
        (resolved,) = (await w.evaluator().run_once()).transitions or []
        assert resolved.resolve_message == "paused: the rule is no longer configured"
