"""Property tests of `dlrhub.providers.twilio.signature`: the check never raises, and a
form signed independently (hmac, hashlib, base64 here) always validates."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.providers.base import HookRequest
from dlrhub.providers.twilio.signature import TWILIO_SIGNATURE

EXAMPLES = settings(max_examples=300, deadline=None)

any_text = st.text(st.characters(exclude_categories=()), max_size=60)  # lone surrogates too
plain_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
tokens = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
headers = st.dictionaries(
    st.sampled_from(["x-twilio-signature", "authorization", "host", "x-forwarded-host"]) | any_text,
    any_text,
    max_size=4,
)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}/{path}{query}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["dlr.example.com", "127.0.0.1", "[::1]", "user:pw@example.org"]),
    st.sampled_from(["", ":80", ":443", ":8080", ":"]),
    st.from_regex(r"[A-Za-z0-9/_.-]{0,20}", fullmatch=True),
    st.sampled_from(["", "?ref=a%20b", "?a=1&a=2", "?x=%E2%82%AC+y"]),
)


def signed(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    text = url + "".join(name + value for name, value in sorted(pairs))
    digest = hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def request(url: str, body: bytes, given_headers: dict[str, str]) -> HookRequest:
    return HookRequest(method="POST", url=url, query_string=b"", headers=given_headers, body=body)


@EXAMPLES
@given(any_text | urls, st.binary(max_size=400), headers, any_text)
def test_the_check_never_raises(
    url: str, body: bytes, given_headers: dict[str, str], secret: str
) -> None:
    assert TWILIO_SIGNATURE(request(url, body, given_headers), secret) in (True, False)


@EXAMPLES
@given(urls, st.lists(st.tuples(plain_text, plain_text), max_size=10), tokens)
def test_an_independently_signed_form_validates_and_another_token_does_not(
    url: str, pairs: list[tuple[str, str]], token: str
) -> None:
    body = "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in pairs).encode()
    signature = signed(token, url, pairs)
    assert TWILIO_SIGNATURE(request(url, body, {"x-twilio-signature": signature}), token)
    assert not TWILIO_SIGNATURE(request(url, body, {"x-twilio-signature": signature}), token + "x")
    assert not TWILIO_SIGNATURE(request(url, body, {}), token)
