"""The baseline for `bench/ingest.py`: Starlette under Uvicorn and nothing else.

One POST route at the same path dlrhub's event notifications use; it reads the
body and answers 200 with a tiny JSON. Whatever dlrhub does on top (token
check, normalizing, the durable SQLite commit) is the difference the benchmark
measures.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/hooks/{source}/events", receive, methods=["POST"])])
