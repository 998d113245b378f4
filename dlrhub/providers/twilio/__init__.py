"""Twilio: pushes message status callbacks, signed with the account's auth token.

Everything Twilio is in this folder: `callbacks.py` (the status callback, its
status table and the user's page, docs/providers/twilio.md), `signature.py`
(`X-Twilio-Signature`), `fake.py` (a Twilio that sends signed callbacks). dlrhub
does not send through Twilio, so there is no client.
"""

from __future__ import annotations

from dlrhub.normalizers.base import SourceOptions
from dlrhub.providers.base import Provider, Route, SourceSpec
from dlrhub.providers.twilio import callbacks
from dlrhub.providers.twilio.signature import TWILIO_SIGNATURE

ROUTES = (
    Route(
        callbacks.KIND,
        ("POST",),
        body="form",
        summary="Twilio message status callback (form-encoded, X-Twilio-Signature)",
        fields=callbacks.FIELDS,
    ),
)


def _urls(hook: str, auth_token: str, options: SourceOptions) -> list[tuple[str, str]]:
    # The auth token signs the callbacks; it never travels in the URL.
    return [("StatusCallback (POST, signed with your auth token)", f"{hook}/{callbacks.KIND}")]


PROVIDER = Provider(
    name="twilio",
    title="Twilio",
    normalize=callbacks.normalize,
    docs="docs/providers/twilio.md",
    status_table="dlrhub/providers/twilio/callbacks.py",
    source=SourceSpec(
        routes=ROUTES,
        auth=TWILIO_SIGNATURE,
        urls=_urls,
        secret_key="auth_token",  # noqa: S106 (the name of a key, not a secret)
    ),
    fake="dlrhub.providers.twilio.fake:FakeTwilio",
)
