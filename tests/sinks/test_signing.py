"""Signatures made by dlrhub verify with the `standardwebhooks` package, and the reverse."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryError

import dlrhub
from dlrhub.sinks.signing import (
    WebhookVerificationError,
    decode_secret,
    new_secret,
    signature_headers,
)
from tests.sinks.conftest import SECRET

BODY = b'{"id":"evt-1","status":"delivered"}'


def test_dlrhub_signature_verifies_with_the_standard_library() -> None:
    headers = signature_headers(decode_secret(SECRET), "evt-1", BODY)
    assert Webhook(SECRET).verify(BODY, headers) == {"id": "evt-1", "status": "delivered"}


def test_tampered_body_and_old_timestamp_fail_in_both_libraries() -> None:
    key = decode_secret(SECRET)
    headers = signature_headers(key, "evt-1", BODY)
    tampered = BODY.replace(b"delivered", b"failed")
    with pytest.raises(LibraryError):
        Webhook(SECRET).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        dlrhub.verify_webhook(tampered, headers, SECRET)
    old = signature_headers(key, "evt-1", BODY, timestamp=int(time.time()) - 3600)
    with pytest.raises(LibraryError):
        Webhook(SECRET).verify(BODY, old)
    with pytest.raises(WebhookVerificationError, match="too old"):
        dlrhub.verify_webhook(BODY, old, SECRET)
    with pytest.raises(WebhookVerificationError):
        dlrhub.verify_webhook(BODY, headers, new_secret())
    with pytest.raises(WebhookVerificationError, match="missing"):
        dlrhub.verify_webhook(BODY, {}, SECRET)


def test_verify_webhook_accepts_the_standard_library_signature() -> None:
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("msg_1", now, BODY.decode())
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": f"v1,bm90IGl0 {signature}",  # any one of several may match
    }
    assert dlrhub.verify_webhook(BODY, headers, SECRET)["id"] == "evt-1"


def test_new_secrets_are_whsec_base64_of_32_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(decode_secret(secret)) == 32
    assert secret != new_secret()
