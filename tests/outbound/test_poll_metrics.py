"""`dlrhub poll --metrics-port`: a poller process of its own exports its metrics, so that
the paused-account alert (docs/operations.md) works for it too."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from dlrhub.outbound.sending import Outbound, TrackRequest
from dlrhub.providers.onurix.fake import FakeOnurix
from tests.outbound.conftest import Stores, outbound_config
from tests.outbound.test_poll_shutdown import poller_config
from tests.outbound.test_poller import onurix_account
from tests.processes import free_port
from tests.serving import serve_app
from tests.waiting import eventually_async

PAUSED = 'dlrhub_poller_account_paused{account="onx"} 1.0'


async def test_a_poller_process_exports_its_metrics(stores: Stores, tmp_path: Path) -> None:
    fake = FakeOnurix(progression=("Entregado",))
    fake.refuse_credentials_with = 401  # a named fault mode: the key is refused
    async with serve_app(fake.app, timeout_graceful_shutdown=1) as base:
        config = outbound_config(stores, [onurix_account(fake, base)])
        outbound = Outbound(config, stores.store, stores.tracking)
        await outbound.track("onx", [TrackRequest(fake.add_message("573150800001").id)])
        await outbound.aclose()
        port = free_port()
        log = tmp_path / "poll.log"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        config_path = poller_config(tmp_path, base, fake, stores.section)
        text = config_path.read_text(encoding="utf-8")  # this process has a refused key
        config_path.write_text(text.replace(fake.key, "not-the-key"), encoding="utf-8")
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "dlrhub", "poll", "--config", str(config_path)),
                *("--metrics-port", str(port)),
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        try:

            async def paused() -> bool:
                assert process.returncode is None, log.read_text()
                async with httpx.AsyncClient() as client:
                    try:
                        answer = await client.get(f"http://127.0.0.1:{port}/metrics")
                    except httpx.TransportError:
                        return False
                return PAUSED in answer.text

            await eventually_async(paused, 30, "the paused account in the poller's metrics")
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
