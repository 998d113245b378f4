"""Each sink's delivery shows on the served app's /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from dlrhub.app import create_app
from dlrhub.commands.sinks import register_sink_metrics
from dlrhub.sinks.service import SinkService
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN
from tests.serving import serve_app
from tests.sinks.conftest import sink_config
from tests.waiting import eventually_async


async def test_sink_metrics_on_the_metrics_page(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    config = sink_config(
        tmp_path,
        f'admin_token = "{ADMIN_TOKEN}"\n'
        f'[[sources]]\nname = "nrs360"\nprovider = "360nrs"\ntoken = "{SOURCE_TOKEN}"\n'
        f'[[sinks]]\nname = "archive"\nkind = "jsonl"\npath = "{out}"\n',
    )
    service = SinkService(config)
    app = create_app(config, services=[service])
    register_sink_metrics(app.state.metrics.registry, [service])
    async with serve_app(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        for index in range(5):
            answer = await client.get(
                f"/hooks/nrs360/dlr?token={SOURCE_TOKEN}&status=1&ref=r{index}"
            )
            assert answer.status_code == 200
        text = ""
        caught_up = (
            'dlrhub_sink_delivered_total{sink="archive"} 5.0',
            'dlrhub_sink_lag_events{sink="archive"} 0.0',  # measured every control_interval
        )

        async def metrics_caught_up() -> bool:
            nonlocal text
            text = (await client.get("/metrics")).text
            return all(line in text for line in caught_up)

        await eventually_async(metrics_caught_up, 10, lambda: f"{caught_up} in:\n{text}")
    assert 'dlrhub_sink_delivered_total{sink="archive"} 5.0' in text
    assert 'dlrhub_sink_lag_events{sink="archive"} 0.0' in text
    assert 'dlrhub_sink_dead_letters{sink="archive"} 0.0' in text
    assert 'dlrhub_sink_failed_attempts_total{sink="archive"} 0.0' in text
    assert 'dlrhub_sink_up{sink="archive"}' in text
