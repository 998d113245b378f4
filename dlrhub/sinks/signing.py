"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both ends.

dlrhub signs every webhook it sends with three headers:

| header              | value                                                          |
|---------------------|----------------------------------------------------------------|
| `webhook-id`        | the event id (a batch: `batch_` + a hash of its event ids)     |
| `webhook-timestamp` | Unix seconds when this attempt was signed                      |
| `webhook-signature` | `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))    |

The secret is written `whsec_<base64 key>`; the HMAC key is the decoded bytes.
`verify_webhook` is the Python consumer's side (exported as
`dlrhub.verify_webhook`); any Standard Webhooks library verifies the same
headers (see docs/sinks.md for Node and Go).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
DEFAULT_TOLERANCE = 300  # seconds either side of now, as the Standard Webhooks libraries do


class WebhookVerificationError(ValueError):
    """The webhook's signature headers are missing, stale, or do not match the body."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional)."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("the secret must not be empty")
    return key


def new_secret() -> str:
    """A fresh random secret in the `whsec_` format (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    key: bytes, message_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
    }


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a dlrhub webhook and answer its JSON payload; raise `WebhookVerificationError`.

    `body` must be the raw request body, byte for byte; `headers` any mapping
    (names are compared case-insensitively).
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and stamp_text and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        stamp = int(stamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old or too far in the future")
    try:
        key = decode_secret(secret)
    except ValueError as error:
        raise WebhookVerificationError(str(error)) from None
    expected = sign(key, message_id, stamp, raw).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches the body")
