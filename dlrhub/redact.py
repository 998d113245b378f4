"""Remove secrets from what dlrhub stores, logs and sends on.

Provider keys, source tokens and passwords travel in query strings, forms and
JSON (360NRS cannot send headers; Onurix and UVox take keys as parameters; a
progress notification or a form's `extra` field may hold any object). They must
never reach the database, logs, `/v1` answers, sink deliveries or error messages.

## What is secret: one rule, `is_secret_name`

A name (a query or form parameter, a JSON member at any depth) is secret when one
of its words is. The words of a name are its runs of letters (so `_`, `-`, `.`,
digits, spaces and brackets separate them), split again where camelCase starts a
new word (`refreshToken` is refresh + token, `APIKey` is api + key), in lower case.
A word is secret when it is in `SECRET_WORDS`, or ends with one of its words of
four letters or more: a compound written as one lower-case word has no boundary
to split on (libpq's `sslpassword`, `accesstoken`, `dbpass`, `oauth`). So:

| name                                              | secret | why                          |
|---------------------------------------------------|--------|------------------------------|
| `client_secret`, `auth_token`, `x-api-key`, `Key` | yes    | a word is in the table       |
| `refreshToken`, `APIKey`, `user[password]`        | yes    | camelCase, brackets split    |
| `sslpassword`, `accesstoken`, `oauth`             | yes    | ends with a word of 4+ letters |
| `monkey`, `keyword`, `config`, `design`           | no     | `key`, `sig` count whole only |
| `passenger`, `author`, `tokens`, `MessageSid`     | no     | a table word must end a word |

The price of the ending rule is a few harmless words caught (`compass`, `bypass`):
their value is hidden, nothing else changes.

## Where it applies

| what                                      | function                                        |
|-------------------------------------------|-------------------------------------------------|
| a query string, a form body (and a JSON   | `redact_query`, `redact_form`                   |
| object in a value: 360NRS's `extra`)      |                                                 |
| a JSON body (`/progress`), at any depth   | `redact_json_text`, `redact_json_body`          |
| a decoded JSON value (an event's `extra`) | `redact_json`                                   |
| a callback before it is stored            | `RawCallback.redacted` (dlrhub/event.py)        |
| the access line, error texts, DSNs        | `redact_query`, `redact_text`, `redact_dsn`     |

Everything else is left byte for byte, and nothing here raises on any input.

Redaction never changes what identifies a callback: the receiver normalizes it and
computes its dedupe key first, on the callback as received, and redacts what it
stores afterwards (dlrhub/receiver/ingest.py). A name in `keep` (the names a
source's configuration gives its parameters, `dlr_params`) is never redacted.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from dlrhub.name_cache import CACHE_SIZE, LONGEST_CACHED, cached_for_short_names

REDACTED = "[REDACTED]"

# The one table. `credential(s)`: both spellings are common, and `credentials`
# does not end with `credential`.
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "signature",
        "sig",
    }
)
# Shorter words end too many harmless ones (monkey, turkey, hotkey?, ...).
SHORTEST_ENDING = 4
_SECRET_ENDINGS = tuple(sorted(word for word in SECRET_WORDS if len(word) >= SHORTEST_ENDING))
_NO_NAMES: frozenset[str] = frozenset()

_LETTER_RUNS = re.compile(r"[^\W\d_]+")


def name_words(name: str) -> list[str]:
    """The words of a name, lower-cased: runs of letters, split at camelCase."""
    words = []
    for run in _LETTER_RUNS.findall(name):
        start = 0
        last = len(run) - 1
        for index in range(1, len(run)):
            if run[index].isupper():
                before = run[index - 1]
                if before.islower() or (
                    before.isupper() and index < last and run[index + 1].islower()
                ):  # fooBar, or the `K` of `APIKey`
                    words.append(run[start:index].lower())
                    start = index
        words.append(run[start:].lower())
    return words


def _stems(words: Iterable[str]) -> tuple[str, ...]:
    """The words that contain no other word, so that every word contains one of them."""
    unique = set(words)
    return tuple(sorted(w for w in unique if not any(o != w and o in w for o in unique)))


# auth, credential, key, pass, pwd, secret, sig, token: derived, so that a new word is
# never missed. A secret name holds a secret word, which holds a stem, and lower-casing
# a name lower-cases each of its words: so `name.lower()` shows a stem. `token` first:
# the source token is in most query strings, so the look ends at once.
SECRET_STEMS = tuple(sorted(_stems(SECRET_WORDS), key=lambda stem: stem != "token"))
assert all(stem.isascii() and stem.isalpha() for stem in SECRET_STEMS)  # see `_may_name_a_secret`


@cached_for_short_names
def is_secret_name(name: str) -> bool:
    """Whether `name` is secret (the rule is in the module docstring). Never raises."""
    lowered = name.lower()
    if not any(stem in lowered for stem in SECRET_STEMS):
        return False  # the common case, without splitting the name into words
    return any(word in SECRET_WORDS or word.endswith(_SECRET_ENDINGS) for word in name_words(name))


@cached_for_short_names
def _is_secret_encoded_name(name: str) -> bool:
    """`is_secret_name` of a still-encoded parameter name (`+` a space, `%XX` a byte)."""
    return is_secret_name(unquote_plus(name))


def _is_kept(encoded_name: str, keep: Collection[str]) -> bool:
    """Whether the configuration names this parameter, however the reader decodes `+`."""
    if not keep:
        return False
    if "%" not in encoded_name and "+" not in encoded_name:
        return encoded_name in keep
    return unquote(encoded_name) in keep or unquote_plus(encoded_name) in keep


# A `%` followed by `=` before any `&`: the name it is in may encode anything. The last
# `%` of a name finds its `=` without crossing another `%`, so `[^&=%]` loses no name
# and each try in a value's run of escapes (`%C3%B1`) stops at the next `%`.
_PERCENT_IN_NAME = re.compile(r"%[^&=%]*+=")
# What may open a JSON object or array in a value: `{`, `[`, or their escapes.
_JSON_OPENERS = ("{", "[", "%7b", "%5b")


def _may_name_a_secret(query: str) -> bool:
    """False only if no parameter of `query` can be secret or hold a secret: nothing to do.

    Decoded, a secret name contains a stem; without a `%` (`%74oken`) its raw
    spelling shows the stem in `query.lower()` too. Stems are sought in values as
    well: substring searches cost far less than a regex telling names from values
    (CPython's `re` tries each position that may start a stem), and a stem in a
    value only sends the query down the exact path. So does anything that may open
    a JSON object in a value, whose members may hide a name behind escapes.
    """
    lowered = query.lower()
    for stem in SECRET_STEMS:
        if stem in lowered:
            return True
    for opener in _JSON_OPENERS:
        if opener in lowered:
            return True
    return "%" in query and _PERCENT_IN_NAME.search(query) is not None


def _redact_each_parameter(query: str, keep: Collection[str]) -> str:
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, separator, value = part.partition("=")
        if not separator:
            continue
        if _is_secret_encoded_name(name):
            if not _is_kept(name, keep):
                parts[index] = f"{name}={REDACTED}"
        elif any(opener in value.lower() for opener in _JSON_OPENERS):
            redacted = _redact_encoded_json(value, keep)
            if redacted is not value:
                parts[index] = f"{name}={redacted}"
    return "&".join(parts)


def redact_query(query: str, keep: Collection[str] = _NO_NAMES) -> str:
    """Replace the value of every secret parameter; leave the rest byte for byte.

    A value holding a JSON object or array (percent-encoded or not) keeps it, with
    the value of each secret member replaced. Names in `keep` are never secret.
    Most callbacks name no secret: a cheap look for one spares them the split.
    """
    if not query or not _may_name_a_secret(query):
        return query
    return _redact_each_parameter(query, keep)


def redact_form(body: bytes, keep: Collection[str] = _NO_NAMES) -> bytes:
    """`redact_query` for an `application/x-www-form-urlencoded` body.

    The body is read as UTF-8 (bytes that are not stay as they are), as the
    normalizers read it, so that a name they decode as secret is secret here too.
    """
    text = body.decode("utf-8", "surrogateescape")  # str: `in` on bytes is slower
    if "=" not in text or not _may_name_a_secret(text):
        return body
    redacted = _redact_each_parameter(text, keep)
    return body if redacted == text else redacted.encode("utf-8", "surrogateescape")


# ---- JSON ----------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_STRING_OR_BRACKET = re.compile(r'["\[\]{}]')
_COLON = re.compile(r"[\s+]*+:")  # `+` is a space in a form-encoded JSON text
_SPACE = re.compile(r"[\s+]*+")
_SCALAR_END = re.compile(r"[,}\]]")
_QUOTED_REDACTED = f'"{REDACTED}"'


def redact_json_text(text: str, keep: Collection[str] = _NO_NAMES) -> str:
    """A JSON text with the value of every secret member, at any depth, replaced.

    Read as tokens, not parsed: the rest of the text stays character for character,
    and a text that is not valid JSON (too deep, truncated, numbers out of range) is
    redacted as far as it can be read, never refused. Linear in the text's length.
    """
    if not _may_hold_a_secret_member(text):
        return text
    return _replace(text, _secret_value_spans(text, keep))


def redact_json_body(body: bytes, keep: Collection[str] = _NO_NAMES) -> bytes:
    """`redact_json_text` for a body of UTF-8 JSON (bytes that are not stay as they are)."""
    text = body.decode("utf-8", "surrogateescape")
    redacted = redact_json_text(text, keep)
    return body if redacted is text else redacted.encode("utf-8", "surrogateescape")


def _may_hold_a_secret_member(text: str) -> bool:
    """False only if no member name of the JSON text can be secret (`\\u` may hide one)."""
    lowered = text.lower()
    return any(stem in lowered for stem in SECRET_STEMS) or "\\u" in text


def _secret_value_spans(text: str, keep: Collection[str]) -> list[tuple[int, int]]:
    """Where the values of secret members are, in order, none inside another.

    A string that does not end means no later one can (each later quote is inside
    it), so the look stops there: no input makes it quadratic.
    """
    spans = []
    position = text.find('"')
    while position >= 0:
        string = _STRING.match(text, position)
        if string is None:
            break
        position = string.end()
        colon = _COLON.match(text, position)
        if colon is not None and _is_secret_member(string[0], keep):
            start = _skip_space(text, colon.end())
            end = _value_end(text, start)
            if end > start:
                spans.append((start, end))
            position = end
        position = text.find('"', position)
    return spans


def _skip_space(text: str, position: int) -> int:
    space = _SPACE.match(text, position)
    return space.end() if space is not None else position


def _is_secret_member(quoted: str, keep: Collection[str]) -> bool:
    name = quoted[1:-1]
    with contextlib.suppress(UnicodeError):  # a percent-decoded value: one character a byte
        name = name.encode("latin-1").decode("utf-8")
    if "\\" in name:
        name = _unescaped(name)
    return is_secret_name(name) and name not in keep


def _unescaped(name: str) -> str:
    r"""A JSON string's content with its escapes (`\u0073`, `\n`) decoded; as is if invalid."""
    try:
        decoded = json.loads(f'"{name}"')
    except ValueError:
        return name
    return decoded if isinstance(decoded, str) else name


def _value_end(text: str, start: int) -> int:
    """Where the JSON value starting at `start` ends (the end of the text if it does not)."""
    if start >= len(text):
        return start
    first = text[start]
    if first == '"':
        string = _STRING.match(text, start)
        return string.end() if string is not None else len(text)
    if first in "{[":
        depth = 0
        position = start
        while (token := _STRING_OR_BRACKET.search(text, position)) is not None:
            if token[0] == '"':
                string = _STRING.match(text, token.start())
                if string is None:
                    return len(text)
                position = string.end()
                continue
            depth += 1 if token[0] in "{[" else -1
            position = token.end()
            if depth == 0:
                return position
        return len(text)
    delimiter = _SCALAR_END.search(text, start)
    end = delimiter.start() if delimiter is not None else len(text)
    while end > start and (text[end - 1].isspace() or text[end - 1] == "+"):
        end -= 1
    return end


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span replaced by a quoted `[REDACTED]`."""
    if not spans:
        return text
    pieces = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append(_QUOTED_REDACTED)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _redact_encoded_json(value: str, keep: Collection[str]) -> str:
    """A percent-encoded parameter value holding JSON, its secret members' values replaced.

    The escapes are decoded one character per byte, keeping where each came from, so
    that everything but a replaced value stays as it was encoded. `value` itself when
    it holds no JSON object or array, or nothing to replace.
    """
    decoded: list[str] = []
    origins: list[int] = []  # where each decoded character starts in `value`
    position = 0
    for escape in _ESCAPE.finditer(value):
        decoded.append(value[position : escape.start()])
        origins.extend(range(position, escape.start()))
        decoded.append(chr(int(escape[1], 16)))
        origins.append(escape.start())
        position = escape.end()
    decoded.append(value[position:])
    origins.extend(range(position, len(value) + 1))  # and where the end is
    text = "".join(decoded)
    opening = _skip_space(text, 0)
    if text[opening : opening + 1] not in ("{", "[") or not _may_hold_a_secret_member(text):
        return value
    spans = [(origins[start], origins[end]) for start, end in _secret_value_spans(text, keep)]
    return _replace(value, spans) if spans else value


_CONTAINERS = (dict, list)  # a tuple: `dict | list` would build a union at every check


def redact_json(value: Any, keep: Collection[str] = _NO_NAMES) -> Any:
    """A decoded JSON value with every secret member's value, at any depth, replaced.

    `value` itself when nothing is secret (the common case: it is only read);
    otherwise a copy, `value` untouched. Iterative, so no depth makes it raise.
    """
    if not _holds_a_secret_member(value, keep):
        return value
    copy = _container_like(value)
    pending = [(value, copy)]
    while pending:
        original, fresh = pending.pop()
        if isinstance(original, dict):
            for name, item in original.items():
                if isinstance(name, str) and name not in keep and is_secret_name(name):
                    fresh[name] = REDACTED
                else:
                    fresh[name] = _add_child(item, pending)
        else:
            for item in original:
                fresh.append(_add_child(item, pending))
    return copy


def _container_like(value: Any) -> Any:
    return {} if isinstance(value, dict) else []


def _add_child(item: Any, pending: list[tuple[Any, Any]]) -> Any:
    if isinstance(item, _CONTAINERS):
        fresh = _container_like(item)
        pending.append((item, fresh))
        return fresh
    return item


def _holds_a_secret_member(value: Any, keep: Collection[str]) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if _names_a_secret(item, keep):
                return True
            for member in item.values():
                if isinstance(member, _CONTAINERS):
                    pending.append(member)
        elif isinstance(item, list):
            for member in item:
                if isinstance(member, _CONTAINERS):
                    pending.append(member)
    return False


# Member names found not secret, so that an object whose names all are is passed in one
# step (`extra` repeats the same few names on every event). Bounded like `name_cache`.
_HARMLESS_NAMES: set[str] = set()


def _names_a_secret(members: dict[Any, Any], keep: Collection[str]) -> bool:
    if _HARMLESS_NAMES.issuperset(members):
        return False
    for name in members:
        if not isinstance(name, str) or name in _HARMLESS_NAMES:
            continue
        if is_secret_name(name):
            if name not in keep:
                return True
        elif len(name) <= LONGEST_CACHED and len(_HARMLESS_NAMES) < CACHE_SIZE:
            _HARMLESS_NAMES.add(name)
    return False


# ---- free text, URLs, logs -------------------------------------------------------------


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of the given secret values in free text."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_dsn(dsn: str) -> str:
    """A database URL without its password or any password-like parameter.

    `postgresql://u:pw@h/db?password=x&sslpassword=y` becomes
    `postgresql://u:[REDACTED]@h/db?password=[REDACTED]&sslpassword=[REDACTED]`;
    a URL too broken to split loses everything between `//` and its last `@`.
    """
    try:
        parts = urlsplit(dsn)
        password = parts.password
    except ValueError:  # a bad IPv6 literal or port: the user part may still hold one
        return redact_query_in_url(_USER_INFO.sub(f"//{REDACTED}@", dsn, count=1))
    if password is None:
        return redact_query_in_url(dsn)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return redact_query_in_url(urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}")))


_USER_INFO = re.compile(r"//[^/?#]*@")


def redact_query_in_url(url: str) -> str:
    base, separator, query = url.partition("?")
    return f"{base}?{redact_query(query)}" if separator else url
