"""UVox: never pushes; dlrhub sends SMS and polls status by `messageId`.

`answers.py` reads its answers (status table there), `client.py` talks to its API,
`fake.py` imitates it for tests and demos; docs/outbound.md is the user's page.
"""

from __future__ import annotations

from collections.abc import Mapping

from dlrhub.providers.base import AccountSpec, Provider
from dlrhub.providers.uvox import answers
from dlrhub.providers.uvox.client import UvoxClient


def _check(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    if settings.get("apikey_in", "query") not in ("query", "header"):
        return [("apikey_in", "must be 'query' or 'header'")]
    return []


PROVIDER = Provider(
    name="uvox",
    title="UVox",
    normalize=answers.normalize,
    docs="docs/outbound.md",
    status_table="dlrhub/providers/uvox/answers.py",
    account=AccountSpec(
        client=UvoxClient,
        base_url="https://my.unityvox.com/api/get-api/v1",
        keys=frozenset({"accountnumber", "apikey", "sender", "status_path", "apikey_in"}),
        required=(("accountnumber",), ("apikey",)),
        secret_keys=frozenset({"apikey"}),
        check=_check,
        pollable=True,
        stop_statuses=("013",),  # "SMS Sent": UVox never says more
        distinct_texts=True,
    ),
    fake="dlrhub.providers.uvox.fake:FakeUvox",
)
