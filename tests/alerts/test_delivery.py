"""An alert reaches operators through the sinks they have: the delivery-drop alert's
events arrive at a real webhook sink filtered to `dlrhub.alert`, at a sink without a
filter, and never at a sink whose `types` filter leaves it out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson

from dlrhub.analytics.figures import DeliveryQuery, figures
from dlrhub.event import Status, epoch_micros
from tests.alerts.conftest import NOW, world
from tests.sinks.conftest import SECRET, Harness, Receiver, sink_config
from tests.sinks.conftest import receiver as receiver  # the fixture
from tests.waiting import eventually_async

AT = NOW.replace(minute=5)


def jsonl_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


async def test_delivery_drop_alert_reaches_a_webhook_sink(
    tmp_path: Path, receiver: Receiver
) -> None:
    sinks = f"""
[[alerts]]
name = "delivery-drop"
kind = "delivery_rate_drop"
points = 10

[[sinks]]
name = "slack"
kind = "webhook"
url = "{receiver.base_url}/hook"
secret = "{SECRET}"
allow_private = true
filter = {{ types = ["dlrhub.alert"] }}

[[sinks]]
name = "everything"
kind = "jsonl"
path = "{tmp_path / "everything.jsonl"}"

[[sinks]]
name = "statuses"
kind = "jsonl"
path = "{tmp_path / "statuses.jsonl"}"
filter = {{ types = ["message.status"] }}
"""
    config = sink_config(tmp_path, sinks)
    async with world(config) as w, Harness(config, w.store, w.sink_state).service():
        for days in range(1, 8):
            await w.send(20, Status.DELIVERED, at=AT - timedelta(days=days))
        await w.send(10, Status.DELIVERED, at=AT)
        await w.send(10, Status.UNDELIVERED, at=AT)
        evaluator = w.evaluator()
        (opened,) = (await evaluator.run_once()).transitions or []
        await eventually_async(lambda: len(receiver.events) == 1, 30, "the alert at the webhook")
        (event,) = receiver.events
        assert (event["type"], event["source"], event["provider"]) == (
            "dlrhub.alert",
            "dlrhub",
            "dlrhub",
        )
        extra = event["extra"]
        assert (extra["rule"], extra["kind"], extra["state"]) == (
            "delivery-drop",
            "delivery_rate_drop",
            "open",
        )
        assert (extra["alert_id"], extra["value"], extra["threshold"]) == (opened.id, 0.5, 0.9)
        assert "50.0 points under" in extra["message"]

        await w.send(200, Status.DELIVERED, at=AT)
        (resolved,) = (await evaluator.run_once()).transitions or []
        assert resolved.id == opened.id
        await eventually_async(lambda: len(receiver.events) == 2, 30, "the resolution")
        assert receiver.events[1]["extra"]["state"] == "resolved"

        total = 7 * 20 * 2 + 220 * 2 + 2  # statuses (accepted, final) and two alerts
        everything = tmp_path / "everything.jsonl"
        await eventually_async(lambda: len(jsonl_lines(everything)) == total, 30)
        alerts = [e for e in jsonl_lines(everything) if e["type"] == "dlrhub.alert"]
        assert [a["extra"]["state"] for a in alerts] == ["open", "resolved"]  # type: ignore[index]
        statuses = tmp_path / "statuses.jsonl"
        await eventually_async(lambda: len(jsonl_lines(statuses)) == total - 2, 30)
        assert {e["type"] for e in jsonl_lines(statuses)} == {"message.status"}
        state = await w.sink_state.state("statuses")
        assert state is not None and state.after_seq == total  # went past the alerts
        week = DeliveryQuery(epoch_micros(AT - timedelta(days=8)), epoch_micros(w.now))
        (sums,) = (await w.store.delivery_sums(week)).values()
        assert figures(sums)["messages"] == 7 * 20 + 220  # the alerts are not messages
