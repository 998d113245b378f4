"""The precheck in `redact_query` / `redact_form` never changes what they return."""

from __future__ import annotations

from urllib.parse import unquote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlrhub import redact
from dlrhub.redact import (
    REDACTED,
    SECRET_PARAMETERS,
    SECRET_STEMS,
    redact_form,
    redact_query,
)

CALLBACK = (
    b"id=x-1&channel=sms&contactId=48213&campaignId=9911"
    b"&campaignName=Campa%C3%B1a+de+oto%C3%B1o&event=delivered&eventDate=2026-11-20+10%3A15%3A00"
)


def reference_redact_query(query: str) -> str:
    """The exact implementation before the precheck, kept as the reference."""
    if not query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, separator, _ = part.partition("=")
        if separator and redact.is_secret_parameter(unquote_plus(name)):
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def reference_redact_form(body: bytes) -> bytes:
    if b"=" not in body:
        return body
    text = body.decode("latin-1")
    redacted = reference_redact_query(text)
    return body if redacted == text else redacted.encode("latin-1")


# Delimiters, escapes, the stems' letters in both cases, and characters that
# `str.lower()`, `strip()` or `unquote_plus` treat specially: the Kelvin sign
# lowers to `k`, `İ` to two characters, `\x85` and `\xa0` are whitespace.
TRICKY = "%&=+-_ \t" + "tokenyscrpawduhTOKENYSCRPAWDUH"
TRICKY += "0123456789abcdefABCDEF\u212a\u0130ñ\x85\xa0"
tricky_texts = st.text(st.sampled_from(TRICKY), max_size=60)
tricky_bytes = st.lists(st.sampled_from(TRICKY.encode("latin-1", "ignore")), max_size=60).map(bytes)


@st.composite
def spelled_names(draw: st.DrawFn) -> str:
    """A secret or harmless name as a caller may spell it: case, `-`, escapes, spaces."""
    name = draw(
        st.sampled_from(
            [*sorted(SECRET_PARAMETERS), "id", "event", "tokens", "monkey", "passenger", "author"]
        )
    )
    escapes = draw(st.booleans())  # else the `%` alone would send most queries the exact way
    spelled = []
    for char in name:
        form = draw(st.integers(0, 5))
        if form == 1:
            spelled.append(char.upper())
        elif form == 2 and escapes:
            spelled.append(f"%{ord(char):02X}")
        elif form == 3 and escapes:
            spelled.append(f"%{ord(char):02x}")
        elif form == 4 and char == "_":
            spelled.append("-")
        elif form == 5 and char == "k":
            spelled.append("\u212a")
        else:
            spelled.append(char)
    pad = st.sampled_from(["", " ", "+", "%20", "\t"])
    return draw(pad) + "".join(spelled) + draw(pad)


plain_values = st.text(st.sampled_from("0123456789xyz+-_ %"), max_size=8)
parts = st.tuples(spelled_names() | tricky_texts, st.none() | plain_values | tricky_texts).map(
    lambda part: part[0] if part[1] is None else f"{part[0]}={part[1]}"
)
queries = st.lists(parts, max_size=6).map("&".join)
any_queries = queries | tricky_texts | st.text(max_size=60)
any_bodies = (
    st.binary(max_size=60)
    | tricky_bytes
    | queries.map(lambda query: query.encode("utf-8"))
    | queries.map(lambda query: query.encode("latin-1", "replace"))
)


@settings(max_examples=500)
@given(any_queries)
@example("%74oken=a")
@example("to%6Ben=a")
@example("API-KEY=a&b=c")
@example(" pass =a")
@example("+pass+=a")
@example("\u212aey=a")
@example("x=1&auth%3Dy=2")
@example("a=b%3D&api_token=c")
def test_redact_query_matches_the_exact_implementation(query: str) -> None:
    assert redact_query(query) == reference_redact_query(query)


@settings(max_examples=500)
@given(any_bodies)
@example(CALLBACK)
@example(b"%74oken=a")
@example(b"to%6Ben=a&x=%C3%B1")
@example(b"API-KEY=a")
@example(b"+pass\xa0=a")
@example(b"Campa%C3%B1a=1&passwd=2")
def test_redact_form_matches_the_exact_implementation(body: bytes) -> None:
    assert redact_form(body) == reference_redact_form(body)


@pytest.mark.parametrize("name", sorted(SECRET_PARAMETERS))
def test_every_secret_name_is_redacted_however_spelled(name: str) -> None:
    dashed = name.replace("_", "-")
    for spelled in {name, name.upper(), dashed, dashed.title(), f" {name}\t", f"+{name}+"}:
        query = f"id=1&{spelled}=s3cr3t&event=sent"
        assert redact_query(query) == f"id=1&{spelled}={REDACTED}&event=sent"
        assert redact_form(query.encode()) == f"id=1&{spelled}={REDACTED}&event=sent".encode()
    kelvin = name.replace("k", "\u212a")
    assert redact_query(f"{kelvin}=s") == f"{kelvin}={REDACTED}"


def test_every_secret_name_contains_a_stem() -> None:
    assert set(SECRET_STEMS) == {"token", "key", "secret", "pass", "pwd", "auth"}
    for name in SECRET_PARAMETERS:
        assert any(stem in name for stem in SECRET_STEMS), name


def test_a_new_secret_name_brings_its_own_stem() -> None:
    assert "signature" in redact._stems(SECRET_PARAMETERS | {"signature", "client_secret"})
    assert sorted(redact._raw_spellings("client_id")) == ["client-id", "client_id"]


def test_a_callback_naming_no_secret_is_not_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def split(query: str) -> str:
        raise AssertionError(f"took the exact path for {query!r}")

    monkeypatch.setattr(redact, "_redact_each_parameter", split)
    assert redact_form(CALLBACK) is CALLBACK
    assert redact_query("status=1&ref=x") == "status=1&ref=x"
