"""`RawCallback`: its dedupe key leaves the authentication out; `redacted()` keeps the key."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from hypothesis import given
from hypothesis import strategies as st

from dlrhub.event import CREDENTIAL_PARAMETER, RawCallback
from dlrhub.redact import REDACTED

RECEIVED = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


def callback(query: str, body: bytes = b"", kind: str = "dlr") -> RawCallback:
    return RawCallback("nrs360", "nrs360", kind, "GET", query, "", body, RECEIVED)


def key(query: str, body: bytes = b"") -> str:
    return callback(query, body).dedupe_key()


def test_the_token_is_left_out_of_the_key() -> None:
    assert key("token=old-token-0123456789&status=1&ref=a") == key(
        "token=new-token-9876543210&status=1&ref=a"
    )
    assert key("%74oken=old&status=1") == key("%74oken=new&status=1")  # as the token check reads it
    assert key("status=1&ref=a&token=x") != key("status=1&ref=b&token=x")


def test_other_parameters_count_whatever_their_name() -> None:
    assert key("token=t&key=order-1") != key("token=t&key=order-2")
    assert key("token=t&TOKEN=a") != key("token=t&TOKEN=b")  # not the credential: a parameter
    assert key("token=t&password=a") != key("token=t&password=b")
    assert key("token=t", b"event=sent&token=a") != key("token=t", b"event=sent&token=b")
    assert key("token=t") != key("token")  # a bare `token` is no credential


def test_the_key_of_a_token_only_query_is_what_it_was_before_redaction_moved() -> None:
    """Keys were hashed from the redacted query: a retry across the upgrade still matches."""
    query = "token=source-token-0123456789&status=1&ref=order-1"
    parts = "\x00".join(("nrs360", "dlr", "GET", f"token={REDACTED}&status=1&ref=order-1", ""))
    assert key(query) == hashlib.sha256(parts.encode()).hexdigest()


names = st.sampled_from(["token", "%74oken", "TOKEN", "tok", "ref", "status", "", "token "])
values = st.sampled_from(["", "a", "b", REDACTED, "x=y"])
parts = st.tuples(names, st.booleans(), values).map(
    lambda part: f"{part[0]}={part[2]}" if part[1] else part[0]
)
queries = st.lists(parts, min_size=1, max_size=5).map("&".join)


def is_credential(part: str) -> bool:
    name, separator, _ = part.partition("=")
    return bool(separator) and unquote_plus(name) == CREDENTIAL_PARAMETER


def differ_only_in_credentials(first: str, second: str) -> bool:
    ones, others = first.split("&"), second.split("&")
    return len(ones) == len(others) and all(
        one == other
        or (
            is_credential(one) and is_credential(other) and one.split("=")[0] == other.split("=")[0]
        )
        for one, other in zip(ones, others, strict=True)
    )


@given(queries, queries)
def test_leaving_the_token_out_merges_nothing_else(first: str, second: str) -> None:
    assert (key(first) == key(second)) == differ_only_in_credentials(first, second)


def test_redacted_keeps_the_key_of_what_was_received() -> None:
    received = callback("token=t-0123456789&status=1&key=order-1&pass=p", kind="dlr")
    redacted = received.redacted(keep={"key"})
    assert redacted.query == f"token={REDACTED}&status=1&key=order-1&pass={REDACTED}"
    assert redacted.dedupe_key() == received.dedupe_key()
    assert received.query == "token=t-0123456789&status=1&key=order-1&pass=p"  # not changed


def test_the_token_is_redacted_even_when_the_configuration_names_it() -> None:
    assert callback("token=t-0123456789").redacted(keep={"token"}).query == f"token={REDACTED}"


def test_nothing_to_redact_is_the_callback_itself() -> None:
    received = callback("status=1&ref=a", b"event=sent")
    assert received.redacted() is received


def test_a_body_is_redacted_as_what_it_looks_like() -> None:
    json_body = callback("", b' \n{"data": {"apiKey": "k", "id": 1}}').redacted()
    assert json_body.body == b' \n{"data": {"apiKey": "[REDACTED]", "id": 1}}'
    form_body = callback("", b"event=sent&client_secret=s").redacted()
    assert form_body.body == b"event=sent&client_secret=[REDACTED]"
