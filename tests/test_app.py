"""The wired app: what it answers around its routes."""

from __future__ import annotations

import pytest

from tests.conftest import Running

FORGED = {"Host": "evil.example"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/events/"),
        ("GET", "/v1/events//"),
        ("GET", "/v1/quarantine/?state=pending"),
        ("GET", "/v1/messages/nrs360/m-1/"),
        ("POST", "/v1/messages/"),
        ("GET", "/readyz/"),
        ("GET", "/openapi.json/"),
        ("GET", "/hooks/nrs360/dlr/"),
    ],
)
async def test_a_trailing_slash_is_404_never_a_redirect_to_the_host_header(
    running_in_process: Running, method: str, path: str
) -> None:
    answer = await running_in_process.admin.request(
        method, path, headers=FORGED, follow_redirects=False
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["error"] == "not_found"
    assert "evil.example" not in answer.text


async def test_the_exact_path_answers_whatever_the_host_header(
    running_in_process: Running,
) -> None:
    answer = await running_in_process.admin.get("/v1/events", headers=FORGED)
    assert answer.status_code == 200
    assert answer.json() == {"events": [], "next_after_seq": 0}
