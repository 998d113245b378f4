"""Tests of `dlrhub.providers.twilio.signature`: `X-Twilio-Signature`.

Expected signatures are computed here with hmac, hashlib and base64 (never with
the code under test), or are Twilio's own published values: the example of its
webhook-security documentation (TwilioDevEd/api-snippets,
security/signature_validation) and the vectors of twilio-python's
tests/unit/test_request_validator.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from urllib.parse import urlencode

import pytest

from dlrhub.providers import PROVIDERS
from dlrhub.providers.base import HookRequest
from dlrhub.providers.twilio.signature import TWILIO_SIGNATURE

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
# Twilio's documentation example (Caller and From end in 5310).
DOCS_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675310"),
    ("Digits", "1234"),
    ("From", "+14158675310"),
    ("To", "+18005551212"),
]
# twilio-python's test parameters (Caller and From end in 5309).
PYTHON_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]


def independent_signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's recipe, written out: URL, then name+value for each pair sorted."""
    text = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check(
    url: str, body: bytes | str, signature: str | None, token: str = TOKEN, **headers: str
) -> bool:
    if isinstance(body, str):
        body = body.encode()
    given = dict(headers)
    if signature is not None:
        given["x-twilio-signature"] = signature
    request = HookRequest(method="POST", url=url, query_string=b"", headers=given, body=body)
    return TWILIO_SIGNATURE(request, token)


# ---- Twilio's published vectors ------------------------------------------------------


def test_twilio_documentation_example() -> None:
    assert check(URL, urlencode(DOCS_PARAMS), "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert independent_signature(TOKEN, URL, DOCS_PARAMS) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


def test_twilio_python_compute_signature_vector() -> None:
    assert check(URL, urlencode(PYTHON_PARAMS), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_twilio_python_repeated_names_sorted_by_value() -> None:
    body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
    assert check(URL, body, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # removes_port_on_https: the URL has :1234, Twilio signed it without.
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # removes_port_on_http: signed with the port this time.
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # adds_port_on_https: the URL has no port, Twilio signed it with :443.
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        # adds_port_on_http: with :80.
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_twilio_python_port_vectors(url: str, signature: str) -> None:
    assert check(url, urlencode(PYTHON_PARAMS), signature)


# ---- independently computed vectors --------------------------------------------------

STATUS_URL = "https://dlr.example.com/hooks/twilio/status"
AUTH_TOKEN = "f1e2d3c4b5a69788796a5b4c3d2e1f00"
STATUS_PARAMS = [
    ("SmsSid", "SM1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"),
    ("SmsStatus", "delivered"),
    ("MessageStatus", "delivered"),
    ("To", "whatsapp:+15558675310"),
    ("MessageSid", "SM1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"),
    ("AccountSid", "ACf1e2d3c4b5a69788796a5b4c3d2e1f00"),
    ("From", "+15017122661"),
    ("ApiVersion", "2010-04-01"),
    ("ErrorMessage", "Señal perdida \u2013 reintento 100% fallido"),
]


def test_a_status_callback_signed_independently_validates() -> None:
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, STATUS_PARAMS)
    assert check(STATUS_URL, urlencode(STATUS_PARAMS), signature, AUTH_TOKEN)


def test_parameter_order_in_the_body_does_not_matter() -> None:
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, STATUS_PARAMS)
    shuffled = list(STATUS_PARAMS)
    random.Random(7).shuffle(shuffled)
    assert check(STATUS_URL, urlencode(shuffled), signature, AUTH_TOKEN)


def test_the_query_string_is_signed_as_called() -> None:
    url = STATUS_URL + "?ref=order%2077&x=1"
    signature = independent_signature(AUTH_TOKEN, url, STATUS_PARAMS)
    assert check(url, urlencode(STATUS_PARAMS), signature, AUTH_TOKEN)
    assert not check(STATUS_URL, urlencode(STATUS_PARAMS), signature, AUTH_TOKEN)
    assert not check(
        STATUS_URL + "?ref=order+77&x=1", urlencode(STATUS_PARAMS), signature, AUTH_TOKEN
    )


@pytest.mark.parametrize(
    ("called", "signed"),
    [
        (
            "https://dlr.example.com:8443/hooks/t/status",
            "https://dlr.example.com:8443/hooks/t/status",
        ),
        ("https://dlr.example.com:8443/hooks/t/status", "https://dlr.example.com/hooks/t/status"),
        ("https://dlr.example.com/hooks/t/status", "https://dlr.example.com:443/hooks/t/status"),
        ("http://127.0.0.1:8080/hooks/t/status?a=b", "http://127.0.0.1/hooks/t/status?a=b"),
        ("http://[::1]:8080/hooks/t/status", "http://[::1]:8080/hooks/t/status"),
        ("http://[::1]:8080/hooks/t/status", "http://[::1]/hooks/t/status"),
        ("http://[::1]/hooks/t/status", "http://[::1]:80/hooks/t/status"),
    ],
)
def test_urls_with_and_without_port_as_twilio_validates(called: str, signed: str) -> None:
    signature = independent_signature(AUTH_TOKEN, signed, STATUS_PARAMS)
    assert check(called, urlencode(STATUS_PARAMS), signature, AUTH_TOKEN)


@pytest.mark.parametrize(
    ("called", "signed"),
    [
        ("https://dlr.example.com/hooks/t/status", "http://dlr.example.com/hooks/t/status"),
        ("https://dlr.example.com/hooks/t/status", "https://dlr.example.com:80/hooks/t/status"),
        ("https://dlr.example.com/hooks/t/status", "https://evil.example/hooks/t/status"),
        ("https://dlr.example.com/hooks/t/status", "https://dlr.example.com/hooks/t/status/"),
        ("http://[::1]:8080/hooks/t/status", "http://::1:8080/hooks/t/status"),
    ],
)
def test_other_urls_do_not_validate(called: str, signed: str) -> None:
    signature = independent_signature(AUTH_TOKEN, signed, STATUS_PARAMS)
    assert not check(called, urlencode(STATUS_PARAMS), signature, AUTH_TOKEN)


def test_repeated_names_are_signed_sorted_by_value() -> None:
    params = [
        ("MessageSid", "SM1"),
        ("Tag", "b"),
        ("Tag", "a"),
        ("Tag", "c"),
        ("MessageStatus", "sent"),
    ]
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, params)
    assert check(STATUS_URL, urlencode(params), signature, AUTH_TOKEN)
    in_body_order = STATUS_URL + "MessageSidSM1MessageStatussentTagbTagaTagc"
    digest = hmac.new(AUTH_TOKEN.encode(), in_body_order.encode(), hashlib.sha1).digest()
    assert not check(STATUS_URL, urlencode(params), base64.b64encode(digest).decode(), AUTH_TOKEN)


def test_blank_values_and_names_without_equals_sign_are_signed_as_empty() -> None:
    params = [("MessageSid", "SM1"), ("ErrorCode", ""), ("Flag", "")]
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, params)
    assert check(STATUS_URL, "MessageSid=SM1&ErrorCode=&Flag", signature, AUTH_TOKEN)
    assert check(STATUS_URL, "&MessageSid=SM1&&ErrorCode=&Flag&", signature, AUTH_TOKEN)


def test_plus_and_percent_escapes_are_decoded_before_signing() -> None:
    params = [("Body", "a b+c"), ("To", "+34600111222")]
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, params)
    assert check(STATUS_URL, "Body=a+b%2Bc&To=%2B34600111222", signature, AUTH_TOKEN)
    assert check(STATUS_URL, "Body=a%20b%2bc&%54o=%2B34600111222", signature, AUTH_TOKEN)


def test_an_empty_form_signs_the_url_alone() -> None:
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, [])
    assert check(STATUS_URL, b"", signature, AUTH_TOKEN)


# ---- refusals ------------------------------------------------------------------------


def test_missing_or_empty_signature_is_refused() -> None:
    body = urlencode(STATUS_PARAMS)
    assert not check(STATUS_URL, body, None, AUTH_TOKEN)
    assert not check(STATUS_URL, body, "", AUTH_TOKEN)
    assert not check(STATUS_URL, body, None, AUTH_TOKEN, authorization="Basic eDp5")


def test_wrong_token_tampered_body_or_altered_signature_is_refused() -> None:
    body = urlencode(STATUS_PARAMS)
    signature = independent_signature(AUTH_TOKEN, STATUS_URL, STATUS_PARAMS)
    assert check(STATUS_URL, body, signature, AUTH_TOKEN)
    assert not check(STATUS_URL, body, signature, AUTH_TOKEN + "x")
    assert not check(STATUS_URL, body.replace("delivered", "failed"), signature, AUTH_TOKEN)
    assert not check(STATUS_URL, body + "&Extra=1", signature, AUTH_TOKEN)
    assert not check(STATUS_URL, body, signature.lower(), AUTH_TOKEN)
    assert not check(STATUS_URL, body, signature + " ", AUTH_TOKEN)
    assert not check(STATUS_URL, body, signature[:-1], AUTH_TOKEN)
    assert not check(STATUS_URL, body, "é" + signature[1:], AUTH_TOKEN)


def test_the_authenticator_reads_the_body_and_answers_403() -> None:
    spec = PROVIDERS["twilio"].source
    assert spec is not None
    assert spec.auth is TWILIO_SIGNATURE
    assert TWILIO_SIGNATURE.needs_body is True
    assert TWILIO_SIGNATURE.headers == ("x-twilio-signature",)
    assert TWILIO_SIGNATURE.challenge is None
