"""Several evaluators on one PostgreSQL database: one evaluates at a time, each alert
opens once, and another takes over when the first stops."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from dlrhub.event import Status
from dlrhub.store.alerts_sql import SQLAlerts
from dlrhub.store.database import open_database
from tests.alerts.conftest import NOW, configured, world
from tests.postgres import fresh_schema

AT = NOW.replace(minute=5)
RULE = {"name": "rate", "kind": "delivery_rate_below", "below": 0.9}


async def test_two_evaluators_open_each_alert_once_and_hand_over(tmp_path: Path) -> None:
    async with fresh_schema() as schema, world(configured(tmp_path, [RULE], schema=schema)) as w:
        other_alerts = SQLAlerts(open_database(w.config.store, w.config.data_dir))
        await other_alerts.open()
        try:
            first, second = w.evaluator("first"), w.evaluator("second", other_alerts)
            await w.send(20, Status.DELIVERED, at=AT)
            await w.send(10, Status.FAILED, at=AT)
            reports = await asyncio.gather(first.run_once(), second.run_once())
            passes = [report.transitions for report in reports]
            assert passes.count(None) == 1, "one of them found the lease taken"
            (opened,) = next(p for p in passes if p is not None)
            holder, waiting = (first, second) if passes[0] is not None else (second, first)
            assert (await waiting.run_once()).transitions is None
            assert (await holder.run_once()).transitions == []
            assert [a.state for a in await w.alerts_now()] == ["open"]
            assert [e.extra["state"] for e in await w.alert_events()] == ["open"]

            await holder.release()  # the holder stops: the other evaluates from its next pass
            await w.send(100, Status.DELIVERED, at=AT)
            w.now += timedelta(minutes=1)
            (resolved,) = (await waiting.run_once()).transitions or []
            assert (resolved.id, resolved.state) == (opened.id, "resolved")
            assert (await holder.run_once()).transitions is None
            assert [e.extra["state"] for e in await w.alert_events()] == ["open", "resolved"]
        finally:
            await other_alerts.close()


async def test_every_kind_of_state_on_postgres(tmp_path: Path) -> None:
    """The growing kinds' samples and the episodes' values read back the same on PostgreSQL."""
    rules = [RULE, {"name": "quarantine", "kind": "quarantine_growing", "window": "10m"}]
    async with fresh_schema() as schema, world(configured(tmp_path, rules, schema=schema)) as w:
        evaluator = w.evaluator()
        await w.send(20, Status.DELIVERED, at=AT)
        await w.send(10, Status.FAILED, at=AT)
        assert [a.rule for a in (await evaluator.run_once()).transitions or []] == ["rate"]
        await w.quarantine(3)
        w.now += timedelta(minutes=1)
        (opened,) = (await evaluator.run_once()).transitions or []
        assert (opened.rule, opened.value, opened.threshold) == ("quarantine", 3.0, 0.0)
        (rate,) = await w.alerts.alerts("open", limit=1)
        assert rate.rule == "quarantine"  # newest first
        w.now += timedelta(minutes=11)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.rule == "quarantine"
        assert [(a.rule, a.state) for a in await w.alerts_now()] == [
            ("rate", "open"),
            ("quarantine", "resolved"),
        ]
