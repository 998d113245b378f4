"""Source tokens are read from the raw query string exactly as Starlette would read them."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from dlrhub.providers.token import basic_password, query_token, verify_source_token

QUERY_PIECES = st.sampled_from(
    ["token", "Token", "tok%65n", "token%3D", "t+oken", "=", "&", "%", "%zz", "+", "x", "é", ""]
)


@given(st.lists(QUERY_PIECES | st.text(max_size=6), max_size=12).map("".join))
def test_query_token_reads_what_starlette_reads(query: str) -> None:
    raw = query.encode("utf-8")
    assert query_token(raw) == QueryParams(raw.decode("latin-1")).get("token")


def test_the_last_token_parameter_counts_and_escapes_are_decoded() -> None:
    assert query_token(b"token=a&token=b%2Bc") == "b+c"
    assert query_token(b"tok%65n=x+y") == "x y"
    assert query_token(b"status=1&phone=%2B34") is None


@given(st.text(max_size=40))
def test_basic_password_never_raises(header: str) -> None:
    basic_password(header)


def test_token_as_basic_password_or_query() -> None:
    header = "Basic " + base64.b64encode(b"360nrs:s3cret").decode()
    assert verify_source_token(b"", header, "s3cret")
    assert verify_source_token(b"token=s3cret", "", "s3cret")
    assert not verify_source_token(b"token=wrong", header, "s3cret")  # the query wins
    assert not verify_source_token(b"", "", "s3cret")
