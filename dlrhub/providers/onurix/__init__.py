"""Onurix: never pushes; dlrhub sends SMS and calls and polls `messages-state`.

`answers.py` reads its answers (status table there), `client.py` talks to its API,
`fake.py` imitates it for tests and demos; docs/outbound.md is the user's page.
"""

from __future__ import annotations

from dlrhub.providers.base import AccountSpec, Provider
from dlrhub.providers.onurix import answers
from dlrhub.providers.onurix.client import OnurixClient

PROVIDER = Provider(
    name="onurix",
    title="Onurix",
    normalize=answers.normalize,
    docs="docs/outbound.md",
    status_table="dlrhub/providers/onurix/answers.py",
    account=AccountSpec(
        client=OnurixClient,
        base_url="https://www.onurix.com/api/v1",
        keys=frozenset({"client", "key", "country_code", "auth_words", "unknown_id_words"}),
        required=(("client",), ("key",)),
        secret_keys=frozenset({"key"}),
        pollable=True,
        channels=frozenset({"sms", "call"}),
    ),
    fake="dlrhub.providers.onurix.fake:FakeOnurix",
)
