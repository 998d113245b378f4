"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both ends.

dlrhub signs every webhook it sends with three headers:

| header              | value                                                          |
|---------------------|----------------------------------------------------------------|
| `webhook-id`        | the event id (a batch: `batch_` + a hash of its event ids)     |
| `webhook-timestamp` | Unix seconds when this attempt was signed                      |
| `webhook-signature` | `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))    |

The secret is written `whsec_<base64 key>`; the HMAC key is the decoded bytes.
With several secrets (a key being rolled) the message is signed with each, and
`webhook-signature` holds one `v1,<signature>` per secret, space-separated, in
the order configured: the spec lets a consumer accept any one that matches, so
a consumer holding only the old secret or only the new one verifies either
way, and the keys can be swapped on both sides without a moment of failures.

`headers_style` picks the header names: `standard` (the table above), `svix`
(`svix-id`, `svix-timestamp`, `svix-signature`: the same values, for
consumers on Svix's libraries, which read these names first) or `both`.

`verify_webhook` is the Python consumer's side (exported as
`dlrhub.verify_webhook`); it takes one secret or several, and reads the
`svix-*` names when the `webhook-*` ones are absent. Any Standard Webhooks
library verifies the same headers (see docs/sinks.md for Node and Go).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
DEFAULT_TOLERANCE = 300  # seconds either side of now, as the Standard Webhooks libraries do

HeadersStyle = Literal["standard", "svix", "both"]
HEADER_PREFIXES: Mapping[HeadersStyle, tuple[str, ...]] = {
    "standard": ("webhook",),
    "svix": ("svix",),
    "both": ("webhook", "svix"),
}


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
    """One `v1,<signature>` entry: the signature of one message with one key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    keys: bytes | Sequence[bytes],
    message_id: str,
    body: bytes,
    timestamp: int | None = None,
    *,
    style: HeadersStyle = "standard",
) -> dict[str, str]:
    """The id, timestamp and signature headers of one message, signed with every key."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signatures = " ".join(
        sign(key, message_id, stamp, body) for key in ([keys] if isinstance(keys, bytes) else keys)
    )
    headers = {}
    for prefix in HEADER_PREFIXES[style]:
        headers[f"{prefix}-id"] = message_id
        headers[f"{prefix}-timestamp"] = str(stamp)
        headers[f"{prefix}-signature"] = signatures
    return headers


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> Any:
    """Check a dlrhub webhook and answer its JSON payload; raise `WebhookVerificationError`.

    `body` must be the raw request body, byte for byte; `headers` any mapping
    (names are compared case-insensitively; `svix-*` stand in for missing
    `webhook-*` ones). `secret` is one secret or several (while a key is
    rolled): the webhook verifies if a signature matches any of them.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {name.lower(): value for name, value in headers.items()}
    prefix = "webhook" if "webhook-signature" in lowered else "svix"
    message_id = lowered.get(f"{prefix}-id")
    stamp_text = lowered.get(f"{prefix}-timestamp")
    signatures = lowered.get(f"{prefix}-signature")
    if not (message_id and stamp_text and signatures):
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature (or their svix-* names)"
        )
    try:
        stamp = int(stamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a Unix time") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too old or too far in the future")
    given = [secret] if isinstance(secret, str) else list(secret)
    if not given:
        raise WebhookVerificationError("no secret to verify with")
    try:
        keys = [decode_secret(text) for text in given]
    except ValueError as error:
        raise WebhookVerificationError(str(error)) from None
    candidates = [candidate.encode() for candidate in signatures.split()]
    for key in keys:
        expected = sign(key, message_id, stamp, raw).encode()
        if any(hmac.compare_digest(candidate, expected) for candidate in candidates):
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no signature matches the body")
