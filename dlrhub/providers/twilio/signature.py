"""Twilio's request signature, `X-Twilio-Signature`.

Twilio signs each webhook with the account's auth token (see
twilio.com/docs/usage/webhooks/webhooks-security): the signed text is the URL as
Twilio called it (scheme, host, port if any, path, query string) followed by every
POST parameter's name and value, no separators, sorted by name; the header is
base64(HMAC-SHA1(auth token, text)). The rules below are those of Twilio's own
validator (twilio-python `RequestValidator`), which the document tells customers
to use rather than their own:

- A name that comes several times contributes each of its values, sorted
  (`compute_signature` sorts the names, then each name's values).
- Both forms of the URL are accepted: with its port removed, and with its port
  written out (the scheme's default, 443 or 80, added when the URL has none).
  Twilio's validator checks both "since sig generation on the back end is
  inconsistent"; like it, we drop any port, not only a default one.
- Names and values are the form's, decoded (`+` is a space, `%XX` a byte); a
  parameter without `=` has an empty value. We sort and sign the decoded bytes:
  UTF-8 byte order is code point order, so this is the validator's string sort for
  every body Twilio sends, and no body can make the check raise.
- Signatures are compared in constant time (`hmac.compare_digest`).

Not supported: JSON webhooks signed over `bodySHA256` (status callbacks are
forms) and Webhook Rules' `X-Twilio-Webhooks-Signature-Settings` (HMAC-SHA256 with
a shared key): such requests fail the check and are answered 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

from dlrhub.providers.base import HookRequest

SIGNATURE_HEADER = "x-twilio-signature"
DEFAULT_PORTS = {"https": 443, "http": 80}

FormPairs = list[tuple[bytes, bytes]]


def form_pairs(body: bytes) -> FormPairs:
    """The (name, value) pairs of a form body, decoded to bytes, in body order."""
    pairs: FormPairs = []
    for piece in body.replace(b"+", b" ").split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def signed_urls(url: str) -> tuple[str, ...]:
    """The forms of `url` Twilio may have signed: without its port, then with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is no number, a bad IPv6 literal: sign it as given
        return (url,)
    host_end = parts.netloc.rfind("]") + 1  # an IPv6 literal holds colons of its own
    colon = parts.netloc.find(":", max(host_end, parts.netloc.rfind("@") + 1))
    host = parts.netloc if colon < 0 else parts.netloc[:colon]
    if port is None:  # none given (or an empty one: `host:/`, signed as written)
        with_port = parts._replace(netloc=f"{host}:{DEFAULT_PORTS.get(parts.scheme, 80)}")
        return (parts.geturl(), with_port.geturl())
    return (parts._replace(netloc=host).geturl(), parts.geturl())


def compute_signature(auth_token: str, url: str, pairs: Iterable[tuple[bytes, bytes]]) -> str:
    """base64(HMAC-SHA1(auth token, URL + each name and value, sorted)), as Twilio signs."""
    text = url.encode("utf-8", "surrogatepass") + b"".join(
        name + value for name, value in sorted(pairs)
    )
    key = auth_token.encode("utf-8", "surrogatepass")
    return base64.b64encode(hmac.new(key, text, hashlib.sha1).digest()).decode("ascii")


def verify_signature(auth_token: str, url: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is Twilio's for this URL (either form) and form body."""
    given = signature.encode("utf-8", "replace")
    pairs = form_pairs(body)
    valid = False
    for candidate in signed_urls(url):
        expected = compute_signature(auth_token, candidate, pairs).encode("ascii")
        valid |= hmac.compare_digest(expected, given)
    return valid and bool(given)


@dataclass(frozen=True, slots=True)
class TwilioSignature:
    """`X-Twilio-Signature` over the called URL and the form; a failure answers 403."""

    needs_body: bool = True
    headers: tuple[str, ...] = (SIGNATURE_HEADER,)
    challenge: str | None = None
    failure: str = "Missing or wrong X-Twilio-Signature; nothing stored."

    @property
    def security(self) -> Mapping[str, Mapping[str, str]]:
        return {"twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature"}}

    def __call__(self, request: HookRequest, secret: str) -> bool:
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return False
        return verify_signature(secret, request.url, request.body, signature)


TWILIO_SIGNATURE = TwilioSignature()
