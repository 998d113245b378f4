"""Serve every provider's fake on loopback for a local demo (Ctrl-C to stop).

    python -m dlrhub.testing [--port 9100] [--latency 0.02] [--step-seconds 5]

Each provider dlrhub sends through gets a fake on consecutive ports from PORT,
in the registry's order (360NRS on PORT, Onurix PORT+1, UVox PORT+2,
Conectaline PORT+3); its `base_url` and the credentials it accepts are printed,
ready for `[[accounts]]`. Messages advance one state every STEP_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from dlrhub.providers import PROVIDERS


async def serve(port: int, latency: float, step_seconds: float) -> None:
    servers = []
    offset = 0
    for provider in PROVIDERS.values():
        if provider.account is None or provider.fake is None:
            continue
        fake = provider.fake_class()(latency=latency)
        for name in ("step_seconds", "step"):  # Onurix and UVox; 360NRS
            if hasattr(fake, name):
                setattr(fake, name, step_seconds)
        base_url = f"http://127.0.0.1:{port + offset}{fake.base_path}"
        settings = "\n".join(f'{key} = "{value}"' for key, value in fake.account_settings().items())
        print(f'# {provider.name}: base_url = "{base_url}"\n{settings}\n')
        config = uvicorn.Config(
            fake.app, host="127.0.0.1", port=port + offset, log_level="warning", lifespan="off"
        )
        servers.append(uvicorn.Server(config))
        offset += 1
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dlrhub.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    parser.add_argument(
        "--step-seconds", type=float, default=5.0, help="seconds between a message's states"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency, args.step_seconds))


if __name__ == "__main__":
    main()
