"""Serve the four fake providers on loopback for a local demo (Ctrl-C to stop).

    python -m dlrhub.testing [--port 9100] [--latency 0.02]

Onurix on PORT, UVox on PORT+1, Conectaline on PORT+2, 360NRS on PORT+3; the
credentials each fake accepts are printed, ready for `[[accounts]]`.
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from dlrhub.testing.conectaline import FakeConectaline
from dlrhub.testing.nrs360 import FakeNrs360
from dlrhub.testing.onurix import FakeOnurix
from dlrhub.testing.uvox import FakeUvox


async def serve(port: int, latency: float) -> None:
    onurix, uvox = FakeOnurix(latency=latency), FakeUvox(latency=latency)
    conectaline, nrs360 = FakeConectaline(latency=latency), FakeNrs360(latency=latency)
    fakes: list[tuple[FakeOnurix | FakeUvox | FakeConectaline | FakeNrs360, str, str]] = [
        (onurix, "/api/v1", f'client = "{onurix.client}"\nkey = "{onurix.key}"'),
        (
            uvox,
            "/api/get-api/v1",
            f'accountnumber = "{uvox.accountnumber}"\napikey = "{uvox.apikey}"',
        ),
        (
            conectaline,
            "/v1",
            f'email = "{conectaline.email}"\npassword = "{conectaline.password}"\n'
            f'configuration_name = "{conectaline.configuration_name}"',
        ),
        (nrs360, "/api/rest", f'username = "{nrs360.username}"\npassword = "{nrs360.password}"'),
    ]
    servers = []
    for offset, (fake, path, credentials) in enumerate(fakes):
        name = type(fake).__name__.removeprefix("Fake").lower()
        print(f'# {name}: base_url = "http://127.0.0.1:{port + offset}{path}"\n{credentials}\n')
        config = uvicorn.Config(
            fake.app, host="127.0.0.1", port=port + offset, log_level="warning", lifespan="off"
        )
        servers.append(uvicorn.Server(config))
    await asyncio.gather(*(server.serve() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dlrhub.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each answer")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency))


if __name__ == "__main__":
    main()
