"""Kannel's `dlr-url` escapes, read once for every source whose receipts use them.

360NRS fills Kannel-style escapes into a send's `notificationUrl`; Kannel, Jasmin
and other SMPP gateways (`dlrhub/providers/smsgateway/`) call a `dlr-url` with
the same escapes or the same SMPP receipt words. Both providers' normalizers
read them through this module, so a fix here reaches both. Pure: no I/O, no
clock; anything unreadable is a `NormalizeError`.

What Kannel fills in (gw/urltrans.c, gw/dlr.h, gw/smsc/smsc_smpp.c):

| escape | value                                                                 |
|--------|-----------------------------------------------------------------------|
| `%d`   | the report's bit: 1 delivered, 2 non-delivered, 4 buffered (queued on |
|        | SMSC), 8 delivered to SMSC, 16 non-delivered to SMSC; 34 and 66 in    |
|        | builds that add an "intermediate" bit                                 |
| `%A`   | the SMSC's reply: `ACK/...` (8), `NACK/0x<code>/<text>` (16), or the  |
|        | SMPP receipt `id:... sub:... dlvrd:... submit date:YYMMDDhhmm done    |
|        | date:YYMMDDhhmm stat:DELIVRD err:000 text:...` (1, 2, 4)              |
| `%F`   | the SMSC's message id (from `submit_sm_resp`; empty on a 16)          |
| `%i`   | the smsc-id of the connection; `%I` the report's own Kannel id (a new |
|        | UUID for every report, so no message identity)                        |
| `%p`   | the original sender; `%P` the original receiver                       |
| `%T`   | Unix time of the report; `%t` the same as `YYYY-MM-DD+HH:MM:SS`, UTC   |

Kannel URL-encodes what it fills in as a form does: a space is `+`, a plus `%2B`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from dlrhub.event import Status
from dlrhub.normalizers.base import NormalizeError, SourceOptions

# Kannel's dlr-url `%d` values (gw/dlr.h); matched by value, not as bit sets:
# Kannel sends one value per report.
KANNEL_DLR_STATUSES: Mapping[int, Status] = {
    1: Status.DELIVERED,
    2: Status.UNDELIVERED,
    4: Status.QUEUED,
    8: Status.SENT,
    16: Status.REJECTED,
    34: Status.EXPIRED,
    66: Status.UNKNOWN,
}

# Status words: the SMPP receipt's `stat` (SMPP 3.4 Appendix B, Table B-2), and
# the plain English a gateway or provider may write instead. Keys are lower case.
DLR_WORD_STATUSES: Mapping[str, Status] = {
    "delivered": Status.DELIVERED,
    "delivrd": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "undeliv": Status.UNDELIVERED,
    "undeliverable": Status.UNDELIVERED,
    "expired": Status.EXPIRED,
    "rejected": Status.REJECTED,
    "rejectd": Status.REJECTED,
    "accepted": Status.ACCEPTED,
    "acceptd": Status.ACCEPTED,
    "enroute": Status.SENT,
    "sent": Status.SENT,
    "queued": Status.QUEUED,
    "buffered": Status.QUEUED,
    "pending": Status.QUEUED,
    "failed": Status.FAILED,
    "deleted": Status.FAILED,
    "unknown": Status.UNKNOWN,
}

# The fields of an SMPP receipt text, by the names dlrhub gives them.
RECEIPT_FIELDS: tuple[str, ...] = (
    "id",
    "sub",
    "dlvrd",
    "submit_date",
    "done_date",
    "stat",
    "err",
    "text",
)

_RECEIPT_KEY = re.compile(
    r"(?<!\S)(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text):", re.IGNORECASE
)
_RECEIPT_DATE = re.compile(r"[0-9]{10}(?:[0-9]{2}(?:[0-9]{2})?)?")
_NACK_CODE = re.compile(r"NACK/([^/]*)", re.IGNORECASE)
_UNSUBSTITUTED = re.compile(r"%[A-Za-z]")

_ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt +][0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?| [0-9]{2}:[0-9]{2})?"
)
_DAY_FIRST_TIME = re.compile(
    r"(?P<day>[0-9]{2})/(?P<month>[0-9]{2})/(?P<year>[0-9]{4}) "
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
)
_COMPACT_TIME = re.compile(
    r"(?P<year>[0-9]{4})(?P<month>[0-9]{2})(?P<day>[0-9]{2})"
    r"(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})(?P<second>[0-9]{2})"
)
_LONG_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")
_SPACE_OFFSET = re.compile(r" ([0-9]{2}:[0-9]{2})$")
_PLAIN_ISO_LENGTH = len("2026-11-20T10:15:00")
_DIGITS = re.compile(r"[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_MAX_EPOCH_DIGITS = 12  # 9999-12-31 is 253402300799 seconds after the epoch


# ---- the query ---------------------------------------------------------------------


def parse_query(query: str, *, plus_as_space: bool) -> dict[str, str]:
    """The parameters of a query string (or form body), the first of each name.

    Split on `&` and on the first `=`, then percent-decoded: invalid escapes are
    kept, undecodable bytes become U+FFFD. `+` is a space only with `plus_as_space`.
    """
    params: dict[str, str] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        params.setdefault(
            _decode_query_text(name, plus_as_space), _decode_query_text(value, plus_as_space)
        )
    return params


def _decode_query_text(encoded: str, plus_as_space: bool) -> str:
    if plus_as_space:
        encoded = encoded.replace("+", " ")
    # A query the receiver decoded with `surrogateescape` may hold lone surrogates,
    # which JSON cannot carry.
    return _SURROGATE.sub("\ufffd", unquote(encoded, errors="replace"))


def is_unsubstituted(value: str) -> bool:
    """Whether a value is an escape the gateway left as it was (`%d`, `%P`, ...)."""
    return _UNSUBSTITUTED.fullmatch(value.strip()) is not None


def present(value: str | None) -> str | None:
    """The value as sent, or None when missing or blank."""
    return value if value is not None and value.strip() else None


def stripped(value: str | None, *, lower: bool = False) -> str | None:
    """The value without surrounding whitespace, or None when missing or blank."""
    if value is None or not value.strip():
        return None
    return value.strip().lower() if lower else value.strip()


# ---- statuses ----------------------------------------------------------------------


def mapped_status(provider_status: str, options: SourceOptions) -> Status | None:
    """The source's own status for this provider value, if its status_map has one."""
    wanted = provider_status.strip().lower()
    for key, status in options.status_map.items():
        if key.strip().lower() == wanted:
            try:
                return Status(status)
            except ValueError as exc:
                raise NormalizeError(
                    f"The source's status_map sends {excerpt(key)} to {excerpt(str(status))}, "
                    "which is not a status."
                ) from exc
    return None


def dlr_status(
    provider_status: str,
    options: SourceOptions,
    words: Mapping[str, Status] = DLR_WORD_STATUSES,
) -> Status:
    """A receipt's status value: the source's status_map, then `%d`, then `words`.

    Numbers are matched by value (`08` is `8`); words case-insensitively after
    trimming. Anything else, an unsubstituted `%d` included, is `unknown`.
    """
    mapped = mapped_status(provider_status, options)
    if mapped is not None:
        return mapped
    word = provider_status.strip().lower()
    if _DIGITS.fullmatch(word) and len(word) <= 6:
        return KANNEL_DLR_STATUSES.get(int(word), Status.UNKNOWN)
    return words.get(word, Status.UNKNOWN)


# ---- the SMSC's reply (`%A`) -------------------------------------------------------


def parse_smpp_receipt(text: str) -> dict[str, str] | None:
    """The fields of an SMPP receipt text, or None when `text` has no `stat:`.

    `id:X sub:001 dlvrd:001 submit date:2412021015 done date:2412021016 stat:DELIVRD
    err:000 text:Hola` gives `{"id": "X", ..., "submit_date": "2412021015", ...}`.
    Keys are found case-insensitively and in any order; `submit_date` and
    `done_date` may be written with `_`. A value runs to the next key; `text`
    runs to the end (it may hold anything). The first of a repeated key counts;
    blank values are left out.
    """
    fields: dict[str, str] = {}
    matches = list(_RECEIPT_KEY.finditer(text))
    for index, found in enumerate(matches):
        key = found[1].lower().replace(" ", "_")
        if key == "text":
            end = len(text)
        else:
            end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[found.end() : end].strip()
        if value and key not in fields:
            fields[key] = value
        if key == "text":
            break
    return fields if "stat" in fields else None


def nack_code(text: str) -> str | None:
    """The error code of Kannel's `NACK/<code>/<description>` reply, if there is one."""
    found = _NACK_CODE.match(text.strip())
    return stripped(found[1]) if found else None


def parse_receipt_date(text: str, timezone: str) -> datetime | None:
    """An SMPP receipt date in UTC, or None when it is not one.

    `YYMMDDhhmm` (SMPP 3.4), `YYMMDDhhmmss` (many SMSCs) or `YYYYMMDDhhmmss`, in
    `timezone` (the SMSC's local time: the receipt carries no zone). Years `YY`
    are 2000-2099. A date that does not exist (month 13) is None too: the text is
    kept by the caller, the receipt is still read.
    """
    value = text.strip()
    if not _RECEIPT_DATE.fullmatch(value):
        return None
    if len(value) == 14:
        year, rest = int(value[:4]), value[4:]
    else:
        year, rest = 2000 + int(value[:2]), value[2:]
    where = zone(timezone)
    try:
        moment = datetime(
            year,
            int(rest[0:2]),
            int(rest[2:4]),
            int(rest[4:6]),
            int(rest[6:8]),
            int(rest[8:10] or 0),
            tzinfo=where,
        ).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if _EARLIEST <= moment < _LATEST else None


# ---- times -------------------------------------------------------------------------


def parse_time(text: str, timezone: str, field: str) -> datetime:
    """A provider time in UTC; see "Times" in docs/providers/nrs360.md for the forms."""
    try:
        moment = _read_time(text.strip())
    except (ValueError, OverflowError) as exc:
        raise NormalizeError(
            f"{excerpt(field)} is {excerpt(text)}, not a valid time: {exc}."
        ) from exc
    if moment is None:
        raise NormalizeError(
            f"{excerpt(field)} is {excerpt(text)}, which is not a date and time we read "
            "(ISO 8601, YYYY-MM-DD HH:MM[:SS], DD/MM/YYYY HH:MM:SS or Unix seconds)."
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone(timezone))
    try:
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise NormalizeError(
            f"{excerpt(field)} is {excerpt(text)}, not a valid time: {exc}."
        ) from exc
    if not _EARLIEST <= moment < _LATEST:
        raise NormalizeError(
            f"{excerpt(field)} is {excerpt(text)}, outside the years 1970-9998 we accept."
        )
    return moment


def _read_time(value: str) -> datetime | None:
    """`value` as a naive or aware time; None when it has none of the accepted forms."""
    if _ISO_TIME.fullmatch(value):
        iso = f"{value[:10]}T{value[11:]}".upper().replace(",", ".")
        if len(iso) > _PLAIN_ISO_LENGTH:  # plain `YYYY-MM-DDTHH:MM:SS` needs neither fix
            # Python 3.11 reads at most microseconds: cut longer fractions.
            iso = _SPACE_OFFSET.sub(r"+\1", _LONG_FRACTION.sub(r"\1", iso))
        return datetime.fromisoformat(iso)
    if found := _DAY_FIRST_TIME.fullmatch(value) or _COMPACT_TIME.fullmatch(value):
        return datetime(
            int(found["year"]),
            int(found["month"]),
            int(found["day"]),
            int(found["hour"]),
            int(found["minute"]),
            int(found["second"]),
        )
    if _DIGITS.fullmatch(value):
        if len(value) > _MAX_EPOCH_DIGITS:
            raise ValueError("Unix time in seconds past year 9999")
        return _EARLIEST + timedelta(seconds=int(value))
    return None


def zone(timezone: str) -> tzinfo:
    """The zone of a source's `timezone`; an unknown name is a `NormalizeError`."""
    if timezone == "UTC":  # the default: datetime's own UTC converts faster than ZoneInfo's
        return UTC
    try:
        return ZoneInfo(timezone)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError, OSError, ...
        raise NormalizeError(
            f"The source's timezone {excerpt(timezone)} is not an IANA zone name "
            "(e.g. Europe/Madrid or UTC)."
        ) from exc


def excerpt(value: str, limit: int = 80) -> str:
    """`repr` of a value for an error message, cut to `limit` characters."""
    return repr(value[:limit]) + ("…" if len(value) > limit else "")
