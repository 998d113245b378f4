"""`dlrhub.redact`: the secret-name rule, query / form / JSON redaction and its precheck."""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlrhub import redact
from dlrhub.providers import PROVIDERS
from dlrhub.redact import (
    REDACTED,
    SECRET_STEMS,
    SECRET_WORDS,
    is_secret_name,
    redact_dsn,
    redact_form,
    redact_json,
    redact_json_body,
    redact_json_text,
    redact_query,
)

CALLBACK = (
    b"id=x-1&channel=sms&contactId=48213&campaignId=9911"
    b"&campaignName=Campa%C3%B1a+de+oto%C3%B1o&event=delivered&eventDate=2026-11-20+10%3A15%3A00"
)

# ---- the rule ---------------------------------------------------------------------

SECRET_NAMES = [
    # the examples
    "client_secret",
    "auth_token",
    "x_api_key",
    "refreshToken",
    "sslpassword",
    # every table word, whole
    *sorted(SECRET_WORDS),
    # separators, case, camelCase, acronyms, brackets, digits
    "API-KEY",
    "Api.Key",
    "APIKey",
    "XApiKey",
    "x-signature",
    "HTTP_AUTHORIZATION",
    "user[password]",
    "key2",
    "pass_1",
    "MySig",
    "access_token",
    "api_token",
    "clientCredentials",
    # compounds ending with a table word of four letters or more
    "accesstoken",
    "dbpass",
    "oauth",
    "topsecret",
    "mysignature",
    "proxyauthorization",
    # the Kelvin sign lower-cases to `k`
    "\u212aey",
]

HARMLESS_NAMES = [
    "keyword",
    "monkey",
    "turkey",
    "config",
    "design",
    "signal",
    "passenger",
    "author",
    "authority",
    "tokens",
    "toKen",  # camelCase: `to` + `ken`
    "MessageSid",
    "AccountSid",
    "id",
    "ref",
    "event",
    "status",
    "campaignName",
    "smtpResponse",
    "extra",
    "",
    "_",
    "123",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def reference_is_secret_name(name: str) -> bool:
    """The rule for ASCII names, written another way: regular expressions for the words."""
    words = [
        word.lower()
        for run in re.findall(r"[A-Za-z]+", name)
        for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", run)
    ]
    endings = [word for word in SECRET_WORDS if len(word) >= 4]
    return any(word in SECRET_WORDS or any(word.endswith(e) for e in endings) for word in words)


name_alphabet = "_-. 0129[]" + "keyapisecrtodwuhnglKEYAPISECRTODWUHNGLmM"
names = st.text(st.sampled_from(name_alphabet), max_size=30)


@settings(max_examples=1000)
@given(names)
@example("APIKey")
@example("sslPASSWORD")
@example("aB")
@example("ABc")
def test_the_rule_matches_its_reference(name: str) -> None:
    assert is_secret_name(name) == reference_is_secret_name(name)


separators = st.sampled_from(["_", "-", ".", " ", "1", "[", "]"])


@given(
    st.lists(st.sampled_from([*sorted(SECRET_WORDS), "id", "monkey", "event", "data"]), min_size=1),
    separators,
    st.booleans(),
)
def test_a_name_is_secret_when_one_of_its_words_is(
    words: list[str], separator: str, camel: bool
) -> None:
    joined = (
        words[0] + "".join(word.capitalize() for word in words[1:])
        if camel
        else separator.join(words)
    )
    assert is_secret_name(joined) == any(word in SECRET_WORDS for word in words)


@settings(max_examples=500)
@given(st.text(max_size=80))
def test_the_rule_never_raises(name: str) -> None:
    is_secret_name(name)


def test_every_secret_word_contains_a_stem() -> None:
    assert set(SECRET_STEMS) == {
        "auth",
        "credential",
        "key",
        "pass",
        "pwd",
        "secret",
        "sig",
        "token",
    }
    assert SECRET_STEMS[0] == "token"
    for word in SECRET_WORDS:
        assert any(stem in word for stem in SECRET_STEMS), word


def test_no_provider_names_its_fields_like_a_secret() -> None:
    """So a provider's identity fields (`id`, `MessageSid`, `msgid`...) are never redacted.

    A provider that documents a field named like a secret must decide what to do
    with it (and change this test), not have it redacted by surprise.
    """
    for provider in PROVIDERS.values():
        if provider.source is None:
            continue
        fields = [field for route in provider.source.routes for field in route.fields]
        fields += list((provider.source.dlr_params or {}).values())
        assert [field for field in fields if is_secret_name(field)] == [], provider.name


# ---- queries and forms -------------------------------------------------------------


def test_each_secret_parameter_is_redacted_and_nothing_else() -> None:
    query = "status=1&token=abc&API-KEY=k1&to%6Ben=sneaky&phone=%2B34&client_secret=p&plain&x="
    assert redact_query(query) == (
        "status=1&token=[REDACTED]&API-KEY=[REDACTED]&to%6Ben=[REDACTED]&phone=%2B34"
        "&client_secret=[REDACTED]&plain&x="
    )


def test_a_name_the_configuration_gives_is_kept() -> None:
    assert redact_query("ref=1&key=r-2&pass=3", keep={"key"}) == "ref=1&key=r-2&pass=[REDACTED]"
    assert redact_form(b"key=r-2&pass=3", keep={"key"}) == b"key=r-2&pass=[REDACTED]"
    assert redact_query("k%65y=r-2", keep={"key"}) == "k%65y=r-2"


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_every_secret_name_is_redacted_however_spelled(name: str) -> None:
    for spelled in {name, f" {name}\t", f"+{name}+", quote(name, safe="")}:
        query = f"id=1&{spelled}=s3cr3t&event=sent"
        assert redact_query(query) == f"id=1&{spelled}={REDACTED}&event=sent"
        encoded = query.encode()
        assert redact_form(encoded) == f"id=1&{spelled}={REDACTED}&event=sent".encode()


def test_a_json_object_in_a_form_value_keeps_all_but_its_secrets() -> None:
    document = {"campaign": "otoño +1", "client_secret": "s-1", "n": [{"auth_token": 2}]}
    for encode in (quote_plus, lambda text: quote(text, safe="")):
        body = f"event=sent&extra={encode(json.dumps(document))}&id=7".encode()
        fields = dict(part.split("=", 1) for part in redact_form(body).decode().split("&"))
        assert fields["id"] == "7"
        assert json.loads(unquote_plus(fields["extra"])) == {
            "campaign": "otoño +1",
            "client_secret": REDACTED,
            "n": [{"auth_token": REDACTED}],
        }
    assert redact_form(b'extra={"a":1}') == b'extra={"a":1}'  # nothing secret: as it was


# Delimiters, escapes, the stems' letters in both cases, JSON's characters, and
# characters that `str.lower()`, `strip()` or `unquote_plus` treat specially: the Kelvin
# sign lowers to `k`, `İ` to two characters, `\x85` and `\xa0` are whitespace.
TRICKY = '%&=+-_ \t{}[]":,\\' + "tokenyscrpawduhigldTOKENYSCRPAWDUHIGLD"
TRICKY += "0123456789abcdefABCDEF\u212a\u0130ñ\x85\xa0"
tricky_texts = st.text(st.sampled_from(TRICKY), max_size=60)
tricky_bytes = st.lists(st.sampled_from(TRICKY.encode("utf-8")), max_size=60).map(bytes)


@st.composite
def spelled_names(draw: st.DrawFn) -> str:
    """A secret or harmless name as a caller may spell it: case, `-`, escapes, spaces."""
    name = draw(st.sampled_from([*SECRET_NAMES, *HARMLESS_NAMES]))
    escapes = draw(st.booleans())  # else the `%` alone would send most queries the exact way
    spelled = []
    for char in name:
        form = draw(st.integers(0, 5))
        if form == 1:
            spelled.append(char.upper())
        elif form == 2 and escapes:
            spelled.append("".join(f"%{byte:02X}" for byte in char.encode()))
        elif form == 3 and escapes:
            spelled.append("".join(f"%{byte:02x}" for byte in char.encode()))
        elif form == 4 and char == "_":
            spelled.append("-")
        elif form == 5 and char == "k":
            spelled.append("\u212a")
        else:
            spelled.append(char)
    pad = st.sampled_from(["", " ", "+", "%20", "\t"])
    return draw(pad) + "".join(spelled) + draw(pad)


json_values = st.sampled_from(['{"key":1}', "[%7B%22pwd%22:2}]", "%7b%22a%22%3a1%7d", "{"])
plain_values = st.text(st.sampled_from("0123456789xyz+-_ %"), max_size=8) | json_values
parts = st.tuples(spelled_names() | tricky_texts, st.none() | plain_values | tricky_texts).map(
    lambda part: part[0] if part[1] is None else f"{part[0]}={part[1]}"
)
queries = st.lists(parts, max_size=6).map("&".join)
any_queries = queries | tricky_texts | st.text(max_size=60)
any_bodies = (
    st.binary(max_size=60)
    | tricky_bytes
    | queries.map(lambda query: query.encode("utf-8", "surrogatepass"))
    | queries.map(lambda query: query.encode("latin-1", "replace"))
)
keeps = st.sampled_from([frozenset(), frozenset({"key", "pass"}), frozenset({"token"})])


@settings(max_examples=500)
@given(any_queries, keeps)
@example("%74oken=a", frozenset())
@example("to%6Ben=a", frozenset())
@example("API-KEY=a&b=c", frozenset())
@example(" pass =a", frozenset())
@example("+pass+=a", frozenset())
@example("\u212aey=a", frozenset())
@example("x=1&auth%3Dy=2", frozenset())
@example("a=b%3D&api_token=c", frozenset())
@example("a=%7B%22%73ecret%22:1}", frozenset())
@example('a={"\\u0073ecret":1}', frozenset())
def test_the_precheck_never_changes_what_redact_query_returns(
    query: str, keep: frozenset[str]
) -> None:
    assert redact_query(query, keep) == redact._redact_each_parameter(query, keep)


@settings(max_examples=500)
@given(any_bodies, keeps)
@example(CALLBACK, frozenset())
@example(b"%74oken=a", frozenset())
@example(b"to%6Ben=a&x=%C3%B1", frozenset())
@example(b"API-KEY=a", frozenset())
@example(b"+pass\xa0=a", frozenset())
@example("\u212aey=a".encode(), frozenset())
@example(b"Campa%C3%B1a=1&passwd=2", frozenset())
def test_the_precheck_never_changes_what_redact_form_returns(
    body: bytes, keep: frozenset[str]
) -> None:
    text = body.decode("utf-8", "surrogateescape")
    exact = redact._redact_each_parameter(text, keep).encode("utf-8", "surrogateescape")
    assert redact_form(body, keep) == exact


@settings(max_examples=300)
@given(any_queries)
def test_only_secret_values_change(query: str) -> None:
    """Each parameter is kept, or keeps its name with a value that says it was redacted."""
    before, after = query.split("&"), redact_query(query).split("&")
    assert len(before) == len(after)
    for original, redacted in zip(before, after, strict=True):
        if original != redacted:
            assert redacted.partition("=")[0] == original.partition("=")[0]
            assert REDACTED in redacted


def test_a_callback_naming_no_secret_is_not_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def split(query: str, keep: object) -> str:
        raise AssertionError(f"took the exact path for {query!r}")

    monkeypatch.setattr(redact, "_redact_each_parameter", split)
    assert redact_form(CALLBACK) is CALLBACK
    assert redact_query("status=1&ref=x") == "status=1&ref=x"


# ---- JSON -----------------------------------------------------------------------------

member_names = st.sampled_from([*SECRET_NAMES, *HARMLESS_NAMES]) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(member_names, children, max_size=4)
    ),
    max_leaves=30,
)


def reference_redact_json(value: Any, keep: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {
            name: REDACTED
            if is_secret_name(name) and name not in keep
            else reference_redact_json(item, keep)
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [reference_redact_json(item, keep) for item in value]
    return value


@settings(max_examples=500)
@given(documents, keeps)
def test_redact_json_replaces_secret_members_and_nothing_else(
    document: Any, keep: frozenset[str]
) -> None:
    original = copy.deepcopy(document)
    redacted = redact_json(document, keep)
    assert redacted == reference_redact_json(document, keep)
    assert document == original  # a copy, never changed in place
    if redacted == document:
        assert redacted is document  # nothing to redact: nothing copied


@settings(max_examples=500)
@given(documents, keeps, st.sampled_from([None, 2]), st.booleans())
def test_redacting_the_text_is_redacting_the_value(
    document: Any, keep: frozenset[str], indent: int | None, ascii_only: bool
) -> None:
    """Any JSON writing (escapes, spaces) reads back as `redact_json` of the value."""
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)
    assert json.loads(redact_json_text(text, keep)) == redact_json(document, keep)
    body = orjson.dumps(document)
    assert orjson.loads(redact_json_body(body, keep)) == redact_json(document, keep)


@settings(max_examples=500)
@given(st.text(max_size=100) | tricky_texts)
@example('{"key": "a", "b": [1, {"pass": {"x": "}"}}], "c": "\\"key\\": 1"}')
@example('{"token"')
@example('{"token":')
@example('{"token": [1, "2')
@example('"key": "a\\')
def test_redact_json_text_never_raises(text: str) -> None:
    redacted = redact_json_text(text)
    if redacted != text:
        assert REDACTED in redacted


def test_json_values_are_found_whatever_they_are() -> None:
    text = (
        '{"data": {"id": 1, "apiKey": "x", "nested": [{"pass": {"a": "}"}}, 2], "sig": -1.5e+3 }}'
    )
    assert json.loads(redact_json_text(text)) == {
        "data": {"id": 1, "apiKey": REDACTED, "nested": [{"pass": REDACTED}, 2], "sig": REDACTED}
    }
    escaped = '{"\\u0073ecret": "s", "k\\u0065y": null}'
    assert json.loads(redact_json_text(escaped)) == {"secret": REDACTED, "key": REDACTED}


def test_json_too_deep_or_broken_is_still_redacted() -> None:
    deep = '{"a":' * 5000 + '{"token": "t-1"}' + "}" * 5000
    assert "t-1" not in redact_json_text(deep)
    assert "t-1" not in redact_json_text('{"data": {"token": "t-1", "unterminated": "x')
    value: Any = {"password": "p"}
    for _ in range(5000):
        value = {"a": [value]}
    redacted = redact_json(value)
    for _ in range(5000):
        redacted = redacted["a"][0]
    assert redacted == {"password": REDACTED}


@pytest.mark.parametrize("text", ['"\\"' * 40_000, '{"a": "' + " " * 80_000, "[" * 80_000])
def test_no_input_makes_json_redaction_slow(text: str) -> None:
    started = time.perf_counter()
    redact_json_text('{"key": ' + text)
    redact_form(f"extra={quote(text)}&key=1".encode())
    assert time.perf_counter() - started < 2.0


# ---- database URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        (
            "postgresql://u:pw@h/db?password=x&sslpassword=y",
            "postgresql://u:[REDACTED]@h/db?password=[REDACTED]&sslpassword=[REDACTED]",
        ),
        (
            "postgresql:///db?host=/run/pg&user=u&password=x&sslmode=verify-full",
            "postgresql:///db?host=/run/pg&user=u&password=[REDACTED]&sslmode=verify-full",
        ),
        ("postgres://u@h:5432/db", "postgres://u@h:5432/db"),
        ("postgresql://u:p%40ss@h1:5432,h2/db", "postgresql://u:[REDACTED]@h1:5432,h2/db"),
        (
            "postgresql://u:pw@[::1/db?sslpassword=y",
            "postgresql://[REDACTED]@[::1/db?sslpassword=[REDACTED]",
        ),
    ],
)
def test_redact_dsn_removes_every_password(dsn: str, redacted: str) -> None:
    assert redact_dsn(dsn) == redacted


@given(st.text(max_size=60))
def test_redact_dsn_never_raises(dsn: str) -> None:
    redact_dsn(dsn)
