"""Conectaline: never pushes and has no status API; dlrhub sends through it.

`answers.py` reads its answers, `client.py` talks to its API (login-token
renewal), `fake.py` imitates it; docs/outbound.md is the user's page.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlrhub.providers.base import AccountSpec, Provider
from dlrhub.providers.conectaline import answers
from dlrhub.providers.conectaline.client import ConectalineClient


def _check(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    if settings.get("api_token") or (settings.get("email") and settings.get("password")):
        return []
    return [("api_token", "is required, or email and password (login)")]


PROVIDER = Provider(
    name="conectaline",
    title="Conectaline",
    normalize=answers.normalize,
    docs="docs/outbound.md",
    status_table="dlrhub/providers/conectaline/answers.py",
    account=AccountSpec(
        client=ConectalineClient,
        base_url="https://apisms.conectaline.com/v1",
        keys=frozenset(
            {"api_token", "email", "password", "configuration_name", "token_renew_margin"}
        ),
        required=(("configuration_name",),),
        secret_keys=frozenset({"api_token", "password"}),
        durations=frozenset({"token_renew_margin"}),
        check=_check,
        distinct_texts=True,
    ),
    fake="dlrhub.providers.conectaline.fake:FakeConectaline",
)
