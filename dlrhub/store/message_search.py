"""The operator console's message search, as one indexed SQL query (`search_statement`).

Rules (docs/search.md):

- `recipient`: its digits are what counts; spaces, dashes, brackets and a leading
  "+" are dropped, on the stored number and on the query alike. Without a leading
  "+", the query's digits must be at least `MIN_SUFFIX_DIGITS` and match the end of
  the stored number's digits: a full number is a suffix of itself, so a stored
  "+573001234567" is found by "573001234567", "3001234567" and "4567". With a
  leading "+" the query is a full number: only stored numbers with exactly those
  digits match (any length). Anything else is a `BadSearch`.
  The suffix match is an index range on `messages.recipient_rev` (the digits
  reversed): a suffix of the number is a prefix of the key, so it is
  `recipient_rev >= key AND recipient_rev < key with its last digit increased`,
  never a `LIKE` with a leading wildcard.
- `since` / `until`: by when the message's last event (`last_seq`) was received.
  They become a seq range through `events_by_received_seq`: `last_seq` at or after
  the first event received at or after `since`, and at or before the last event
  received before `until`. Seqs follow commit order and received times follow each
  receiver's clock, so near the bounds the two orders may differ by a commit's
  duration. A message whose last event retention pruned has a `last_seq` below
  every event kept: a search with `since` never finds it, one with `until` finds it
  when some event received before `until` is kept.
- Newest first (`last_seq` descending), `limit` at a time; the next page is asked
  with `before_seq` = the last `last_seq` of this one.

Every search walks an index, `(filter column, last_seq)` newest first, so it stops
once it has a page: the most selective filter given picks it, in the order message
id, "your ref", recipient, source (one configured source or account), status (a
few values, skewed), provider (fewer still); otherwise `last_seq`, for the time
range, the cursor and no filter at all. Other filters are checked on the rows it
walks. SQLite is told that index (`INDEXED BY`: without statistics it would sort
all of a provider's messages through the primary key); PostgreSQL's planner, which
has statistics, picks among the same indexes. Without an index of its own, a
source with no recent message walked the whole `last_seq` index (130 ms at 300,000
messages) and PostgreSQL chose to scan the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dlrhub.event import Status, format_time
from dlrhub.store.base import MAX_INTEGER, MAX_SEARCH_LIMIT, BadSearch, MessageSearch
from dlrhub.store.dialect import Dialect

MIN_SUFFIX_DIGITS = 4
NOT_A_DIGIT = re.compile(r"[^0-9]")

MESSAGE_COLUMNS = (
    "provider, message_id, source, status, provider_status, ordering_us, last_seq,"
    " recipient, correlation_id"
)


def digits_of(text: str) -> str:
    """The ASCII digits of a phone number, in order."""
    return NOT_A_DIGIT.sub("", text)


def reversed_digits(recipient: str | None) -> str | None:
    """`messages.recipient_rev` for a recipient: its digits reversed ("" when it has none,
    so that it keeps following `recipient`; None for no recipient)."""
    if recipient is None:
        return None
    return digits_of(recipient)[::-1]


def after_prefix(prefix: str) -> str | None:
    """The smallest digit string greater than every digit string starting with `prefix`
    (its last digit below 9 increased, the 9s after it dropped); None: there is none."""
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


@dataclass(frozen=True, slots=True)
class RecipientMatch:
    """How a recipient query matches `recipient_rev`: equal to `key`, or in [key, below)."""

    key: str
    full: bool
    below: str | None = None


def recipient_match(text: str) -> RecipientMatch:
    """Read the `recipient` of a search (rules in the module docstring)."""
    stripped = text.strip()
    digits = digits_of(stripped)
    if stripped.startswith("+") and digits:
        return RecipientMatch(digits[::-1], full=True)
    if len(digits) < MIN_SUFFIX_DIGITS:
        raise BadSearch(
            f"recipient {text!r}: give at least {MIN_SUFFIX_DIGITS} digits of the number"
            ' (its end), or the full number starting with "+"'
        )
    key = digits[::-1]
    return RecipientMatch(key, full=False, below=after_prefix(key))


@dataclass(frozen=True, slots=True)
class SearchStatement:
    """A search as SQL: what `EXPLAIN` is run on in tests, and the index it is meant to use."""

    sql: str
    params: list[Any]
    index: str


def search_statement(query: MessageSearch, dialect: Dialect) -> SearchStatement:
    """The one SELECT that answers `query` (rows of `MESSAGE_COLUMNS`), or `BadSearch`."""
    if not 1 <= query.limit <= MAX_SEARCH_LIMIT:
        raise BadSearch(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, not {query.limit}")
    if query.before_seq is not None and not 0 <= query.before_seq <= MAX_INTEGER:
        raise BadSearch(f"before_seq must be between 0 and {MAX_INTEGER}")
    if query.status is not None:
        try:
            Status(query.status)
        except ValueError:
            known = ", ".join(status.value for status in Status)
            raise BadSearch(f"status {query.status!r} is not one of: {known}") from None
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("message_id", query.message_id),
        ("correlation_id", query.correlation_id),
        ("provider", query.provider),
        ("source", query.source),
        ("status", query.status),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.recipient is not None:
        match = recipient_match(query.recipient)
        if match.full:
            clauses.append("recipient_rev = ?")
            params.append(match.key)
        else:
            clauses.append("recipient_rev >= ?")
            params.append(match.key)
            if match.below is not None:
                clauses.append("recipient_rev < ?")
                params.append(match.below)
    if query.before_seq is not None:
        clauses.append("last_seq < ?")
        params.append(query.before_seq)
    if query.since is not None:
        clauses.append(
            "last_seq >= (SELECT seq FROM events WHERE received_at >= ?"
            " ORDER BY received_at, seq LIMIT 1)"
        )
        params.append(_time_text(query.since))
    if query.until is not None:
        clauses.append(
            "last_seq <= (SELECT seq FROM events WHERE received_at < ?"
            " ORDER BY received_at DESC, seq DESC LIMIT 1)"
        )
        params.append(_time_text(query.until))
    index = _index_for(query)
    hint = f" INDEXED BY {index}" if dialect.name == "sqlite" else ""
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {MESSAGE_COLUMNS} FROM messages{hint}{where}"  # noqa: S608
        " ORDER BY last_seq DESC LIMIT ?"
    )
    return SearchStatement(sql, [*params, query.limit], index)


def _index_for(query: MessageSearch) -> str:
    """The index of the most selective filter given (module docstring)."""
    if query.message_id is not None:
        return "messages_by_message_id"
    if query.correlation_id is not None:
        return "messages_by_correlation"
    if query.recipient is not None:
        return "messages_by_recipient_rev"
    if query.source is not None:
        return "messages_by_source"
    if query.status is not None:
        return "messages_by_status"
    if query.provider is not None:
        return "messages_by_provider"
    return "messages_by_last_seq"


def _time_text(moment: datetime) -> str:
    """`events.received_at`'s text for `moment`; a naive time is taken as UTC."""
    return format_time(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
