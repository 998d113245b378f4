"""Signatures made by dlrhub verify with the `standardwebhooks` package, and the reverse."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as LibraryError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixError

import dlrhub
from dlrhub.sinks.signing import (
    WebhookVerificationError,
    decode_secret,
    new_secret,
    signature_headers,
)
from tests.sinks.conftest import SECRET

BODY = b'{"id":"evt-1","status":"delivered"}'
NEW_SECRET = "whsec_C2FtcGxlLXJvbGxlZC1rZXktMzItYnl0ZXMtbG9uZyE="


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


def test_two_secrets_sign_twice_and_either_alone_verifies() -> None:
    keys = [decode_secret(SECRET), decode_secret(NEW_SECRET)]
    headers = signature_headers(keys, "evt-1", BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    for secret in (SECRET, NEW_SECRET):  # a consumer before, or after, it rolled its key
        assert Webhook(secret).verify(BODY, headers)["id"] == "evt-1"
        assert dlrhub.verify_webhook(BODY, headers, secret)["id"] == "evt-1"
    assert dlrhub.verify_webhook(BODY, headers, [SECRET, NEW_SECRET])["id"] == "evt-1"
    assert dlrhub.verify_webhook(BODY, headers, (new_secret(), NEW_SECRET))["id"] == "evt-1"
    with pytest.raises(LibraryError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="no signature matches"):
        dlrhub.verify_webhook(BODY, headers, [new_secret(), new_secret()])
    with pytest.raises(WebhookVerificationError, match="no secret"):
        dlrhub.verify_webhook(BODY, headers, [])


def test_a_consumer_with_two_secrets_verifies_a_sender_with_either() -> None:
    for secret in (SECRET, NEW_SECRET):
        headers = signature_headers(decode_secret(secret), "evt-1", BODY)
        assert dlrhub.verify_webhook(BODY, headers, [SECRET, NEW_SECRET])["id"] == "evt-1"


@pytest.mark.parametrize("style", ["svix", "both"])
def test_svix_headers_verify_with_the_svix_library(style: str) -> None:
    keys = [decode_secret(SECRET), decode_secret(NEW_SECRET)]
    headers = signature_headers(keys, "evt-1", BODY, style=style)  # type: ignore[arg-type]
    assert {"svix-id", "svix-timestamp", "svix-signature"} <= set(headers)
    assert ("webhook-signature" in headers) == (style == "both")
    for secret in (SECRET, NEW_SECRET):
        SvixWebhook(secret).verify(BODY, headers)  # raises if no signature matches
        assert dlrhub.verify_webhook(BODY, headers, secret)["id"] == "evt-1"
    with pytest.raises(SvixError):
        SvixWebhook(new_secret()).verify(BODY, headers)
    tampered = BODY.replace(b"delivered", b"failed")
    with pytest.raises(SvixError):
        SvixWebhook(SECRET).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        dlrhub.verify_webhook(tampered, headers, [SECRET, NEW_SECRET])


def test_standard_headers_are_the_default_and_carry_no_svix_names() -> None:
    headers = signature_headers(decode_secret(SECRET), "evt-1", BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_a_bad_secret_stays_out_of_the_error() -> None:
    sentinel = "whsec_sentinel-secret-!!"
    headers = signature_headers(decode_secret(SECRET), "evt-1", BODY)
    with pytest.raises(WebhookVerificationError) as error:
        dlrhub.verify_webhook(BODY, headers, [SECRET + "x", sentinel])
    assert "sentinel" not in str(error.value) and SECRET not in str(error.value)
