"""Schemathesis against the served app: every route of the OpenAPI document, `/hooks` included.

Cases are generated from `/openapi.json` (so the document must describe what the
app really accepts and answers), sent over HTTP to dlrhub served by Uvicorn on
loopback with the admin bearer token and, for `/hooks`, a configured source and
its token. Every answer must be documented (status, content type, body schema)
and none may be a 5xx. At least `MIN_REQUESTS` requests are sent in all.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from dlrhub.app import create_app
from dlrhub.config import load_config
from dlrhub.receiver.openapi import openapi_document
from tests.conftest import ADMIN_TOKEN, SOURCE_TOKEN

MIN_REQUESTS = 2000
EXAMPLES_PER_OPERATION = 150
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
SINK = "print"  # configured, never delivered to: no sink worker runs here

# The configured source each callback route is sent to (generated names only find 404s).
SOURCES = {"events": "nrs360", "progress": "nrs360", "dlr": "gateway", "status": "twilio"}

schema = schemathesis.openapi.from_dict(openapi_document())
sent: list[str] = []


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dlrhub under Uvicorn in a thread of its own (the cases are sent synchronously)."""
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "dlrhub.toml"
    path.write_text(
        f"""
data_dir = "{directory / "data"}"
admin_token = "{ADMIN_TOKEN}"

[[sources]]
name = "nrs360"
provider = "360nrs"
token = "{SOURCE_TOKEN}"

[[sources]]
name = "gateway"
provider = "smsgateway"
token = "{SOURCE_TOKEN}"

[[sources]]
name = "twilio"
provider = "twilio"
auth_token = "{TWILIO_TOKEN}"

[[sinks]]
name = "{SINK}"
kind = "stdout"
""",
        encoding="utf-8",
    )
    app = create_app(load_config(path, env={}), ingest_worker=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        for _ in range(500):  # at most 5 s: started, or the thread died saying why
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start the app under test"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _aim(case: Any) -> None:
    """Callbacks go to a configured source of the route's provider, with its token; a
    sink's routes to the configured sink (the sink tests cover unknown names)."""
    if case.path.startswith("/v1/sinks/{name}"):
        case.path_parameters = {**(case.path_parameters or {}), "name": SINK}
    if not case.path.startswith("/hooks/"):
        return
    kind = case.path.rsplit("/", 1)[-1]
    case.path_parameters = {**(case.path_parameters or {}), "source": SOURCES[kind]}
    if kind != "status":  # Twilio signs instead: unsigned, it must answer the documented 403
        case.query = {**(case.query or {}), "token": SOURCE_TOKEN}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_answer_is_documented_and_none_is_a_5xx(case: Any, base_url: str) -> None:
    _aim(case)
    sent.append(case.path)
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        # Generated "invalid" values are often still valid text for us (a query value is
        # always a string): negative-data checks would test the generator, not dlrhub.
        # `ignored_auth` would resend with the token we set ourselves: the auth tests
        # (tests/receiver/test_auth.py, the hooks and API e2e tests) cover refusals.
        excluded_checks=[
            checks.negative_data_rejection,
            checks.positive_data_acceptance,
            checks.ignored_auth,
        ],
    )


def test_enough_requests_were_sent() -> None:
    """Runs after the generated cases (same module, defined after them)."""
    print(f"{len(sent)} generated requests over {len(set(sent))} paths")  # shown with -s
    assert len(sent) >= MIN_REQUESTS, f"only {len(sent)} generated requests were sent"
    assert any(path.startswith("/hooks/") for path in sent)


def test_the_document_names_every_hook_route() -> None:
    hooks = {path.rsplit("/", 1)[-1] for path in openapi_document()["paths"] if "/hooks/" in path}
    assert hooks == set(SOURCES), "a new callback route needs a source in SOURCES"
