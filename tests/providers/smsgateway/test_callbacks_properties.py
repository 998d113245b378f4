"""Property tests of `dlrhub.providers.smsgateway.callbacks` and the Kannel readers it
uses (`dlrhub.normalizers.kannel`): any input gives events or a `NormalizeError`,
every event survives a JSON round trip, and what a Kannel fills in reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from dlrhub.event import Event, RawCallback, Status
from dlrhub.normalizers import kannel
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers.smsgateway.callbacks import (
    DEFAULT_DLR_PARAMS,
    DLR_ESCAPES,
    JASMIN_FIELDS,
    normalize,
)
from dlrhub.providers.smsgateway.fake import fill_escapes

EXAMPLES = settings(max_examples=300, deadline=None)

# Any code point, lone surrogates included: a receiver may hand those over.
any_text = st.text(st.characters(exclude_categories=()))
# What a gateway can send: text that encodes to UTF-8.
sendable_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)

received_ats = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

options_strategy = st.builds(
    SourceOptions,
    dlr_params=st.one_of(
        st.just(dict(DEFAULT_DLR_PARAMS)),
        st.dictionaries(
            st.sampled_from(sorted(DEFAULT_DLR_PARAMS)),
            st.sampled_from(["message_status", "level", "id", "x", ""]) | st.text(max_size=8),
        ),
    ),
    status_map=st.dictionaries(st.text(max_size=12), st.sampled_from(list(Status)), max_size=3),
    timezone=st.sampled_from(["Europe/Madrid", "UTC", "America/Bogota", "Nowhere/Land", ""]),
    dlr_plus_as_space=st.booleans(),
)

stats = st.sampled_from(
    ["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "UNKNOWN", "ENROUTE"]
)
receipt_dates = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda moment: moment.strftime("%y%m%d%H%M")
    ),
    st.text("0123456789", min_size=8, max_size=16),
    st.sampled_from(["ND", "", "2413991399"]),
)


@st.composite
def receipts(draw: st.DrawFn) -> str:
    fields = [
        f"id:{draw(st.text('0123456789abcdefABCDEF-', min_size=1, max_size=12))}",
        f"sub:{draw(st.integers(0, 999)):03d}",
        f"dlvrd:{draw(st.integers(0, 999)):03d}",
        f"submit date:{draw(receipt_dates)}",
        f"done date:{draw(receipt_dates)}",
        f"stat:{draw(stats | st.text(max_size=8))}",
        f"err:{draw(st.text('0123456789ABCDEF', max_size=3))}",
    ]
    fields = draw(st.permutations(fields))[: draw(st.integers(0, len(fields)))]
    if draw(st.booleans()):
        fields.append(f"text:{draw(any_text)}")
    return draw(st.sampled_from([" ", "  ", "\t"])).join(fields)


statuses = st.one_of(
    st.sampled_from(["1", "2", "4", "8", "16", "34", "66", "DELIVRD", "%d", "ESME_ROK", ""]),
    st.text(max_size=8),
)


@st.composite
def gateway_params(draw: st.DrawFn) -> list[tuple[str, str]]:
    names = [*DEFAULT_DLR_PARAMS.values(), *JASMIN_FIELDS, "token", "customId"]
    values = st.one_of(
        statuses,
        receipts(),
        receipt_dates,
        st.sampled_from(["%P", "%A", "%F", "ND", "1733134576", "2024-12-02+10:15:31"]),
        any_text,
    )
    params = draw(
        st.lists(st.tuples(st.sampled_from(names) | st.text(max_size=6), values), max_size=12)
    )
    # Most often a status somewhere: without one every callback is an error.
    if draw(st.integers(0, 3)):
        status_name = draw(st.sampled_from(["status", "message_status", "reply"]))
        status = draw(receipts() if status_name == "reply" else statuses)
        params.insert(draw(st.integers(0, len(params))), (status_name, status))
    return params


def encoded(params: list[tuple[str, str]], *, encode: bool) -> str:
    if not encode:
        return "&".join(f"{name}={value}" for name, value in params)
    return "&".join(
        f"{quote(name, errors='surrogatepass')}={quote(value, errors='surrogatepass')}"
        for name, value in params
    )


def raw_callback(
    query: str, body: bytes, received_at: datetime, *, kind: str = "dlr"
) -> RawCallback:
    return RawCallback(
        source="gateway-prop",
        provider="smsgateway",
        kind=kind,
        method="POST" if body else "GET",
        query=query,
        content_type="application/x-www-form-urlencoded" if body else "",
        body=body,
        received_at=received_at,
    )


def assert_events_or_normalize_error(raw: RawCallback, options: SourceOptions) -> None:
    try:
        events = normalize(raw, options)
    except NormalizeError:
        return
    assert len(events) == 1
    (event,) = events
    assert isinstance(event, Event)
    assert event.provider == "smsgateway"
    assert event.extra["format"] in {"kannel", "jasmin"}
    assert Event.from_json(event.to_json()) == event


@EXAMPLES
@given(query=any_text, body=st.binary(), options=options_strategy, received_at=received_ats)
def test_any_query_and_body(
    query: str, body: bytes, options: SourceOptions, received_at: datetime
) -> None:
    assert_events_or_normalize_error(raw_callback(query, body, received_at), options)


@EXAMPLES
@given(
    params=gateway_params(),
    in_body=gateway_params(),
    encode=st.booleans(),
    options=options_strategy,
    received_at=received_ats,
)
def test_any_gateway_parameters(
    params: list[tuple[str, str]],
    in_body: list[tuple[str, str]],
    encode: bool,
    options: SourceOptions,
    received_at: datetime,
) -> None:
    body = encoded(in_body, encode=encode).encode("utf-8", "surrogatepass")
    raw = raw_callback(encoded(params, encode=encode), body, received_at)
    assert_events_or_normalize_error(raw, options)


@EXAMPLES
@given(kind=any_text, query=any_text, options=options_strategy, received_at=received_ats)
def test_any_kind(kind: str, query: str, options: SourceOptions, received_at: datetime) -> None:
    assert_events_or_normalize_error(raw_callback(query, b"", received_at, kind=kind), options)


@EXAMPLES
@given(
    level=st.sampled_from(["1", "2", "3"]),
    message_status=st.one_of(stats, st.sampled_from(["ESME_ROK", "ESME_RTHROTTLED"])),
    donedate=receipt_dates,
    text=sendable_text,
    method=st.sampled_from(["GET", "POST"]),
    received_at=received_ats,
)
def test_every_jasmin_dlr_gives_its_event(
    level: str,
    message_status: str,
    donedate: str,
    text: str,
    method: str,
    received_at: datetime,
) -> None:
    fields = {"id": "abc", "level": level, "message_status": message_status, "connector": "c"}
    if level != "1":
        fields.update({"id_smsc": "f00", "donedate": donedate, "err": "000", "text": text})
    form = urlencode(fields)
    if method == "GET":
        raw = raw_callback(f"token=[REDACTED]&ref=r&{form}", b"", received_at)
    else:
        raw = raw_callback("token=[REDACTED]&ref=r", form.encode(), received_at)
    [event] = normalize(raw, SourceOptions())
    assert (event.message_id, event.correlation_id) == ("abc", "r")
    assert event.provider_status == message_status
    assert event.extra["level"] == int(level)
    if level != "1" and text.strip() and text.strip() != "ND":
        assert event.extra["receipt"]["text"] == text.strip()


def expected_value(value: str) -> str | None:
    """What a filled-in escape reads back as: trimmed, and absent when blank or unfilled."""
    if not value.strip() or kannel.is_unsubstituted(value):
        return None
    return value.strip()


@EXAMPLES
@given(
    phone=sendable_text,
    sender=sendable_text,
    message_id=sendable_text,
    smsc=sendable_text,
    reply=st.one_of(receipts(), sendable_text),
    bit=st.sampled_from(["1", "2", "4", "8", "16"]),
    at=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_what_kannel_fills_in_reads_back(
    phone: str, sender: str, message_id: str, smsc: str, reply: str, bit: str, at: datetime
) -> None:
    reply = reply.encode("utf-8", "replace").decode("utf-8")  # what Kannel's bytes can carry
    template = "https://dlr.example.com/hooks/gw/dlr?token=T&" + "&".join(
        f"{DEFAULT_DLR_PARAMS[field]}={escape}" for field, escape in DLR_ESCAPES.items()
    )
    values = {"d": bit, "P": phone, "p": sender, "F": message_id, "i": smsc, "I": "u", "A": reply}
    url = fill_escapes(template + "&ref=r-1", values, at.replace(tzinfo=UTC))
    [event] = normalize(
        raw_callback(url.split("?", 1)[1], b"", at.replace(tzinfo=UTC)), SourceOptions()
    )
    assert event.provider_status == bit
    assert event.recipient == expected_value(phone)
    assert event.sender == expected_value(sender)
    assert event.message_id == (expected_value(message_id) or "r-1")
    assert event.extra.get("smsc_id") == expected_value(smsc)
    assert event.extra.get("smsc_reply") == (None if expected_value(reply) is None else reply)
    assert event.occurred_at == at.replace(tzinfo=UTC, microsecond=0)


# ---- the SMSC's reply --------------------------------------------------------------


@EXAMPLES
@given(text=st.one_of(any_text, receipts()))
def test_receipt_parser_never_fails(text: str) -> None:
    fields = kannel.parse_smpp_receipt(text)
    if fields is not None:
        assert "stat" in fields
        assert set(fields) <= set(kannel.RECEIPT_FIELDS)
        assert all(value and value == value.strip() for value in fields.values())
    kannel.nack_code(text)


@EXAMPLES
@given(
    receipt_id=st.text("0123456789abcdef", min_size=1, max_size=10),
    stat=stats,
    err=st.text("0123456789ABCDEF", min_size=1, max_size=3),
    done=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    text=sendable_text,
    case=st.sampled_from([str.lower, str.upper, str]),
)
def test_receipt_parser_reads_back_what_an_smsc_writes(
    receipt_id: str, stat: str, err: str, done: datetime, text: str, case: object
) -> None:
    assert callable(case)
    date = done.strftime("%y%m%d%H%M")
    written = (
        f"{case('id')}:{receipt_id} sub:001 dlvrd:001 {case('submit date')}:{date} "
        f"{case('done date')}:{date} {case('stat')}:{stat} {case('err')}:{err} "
        f"{case('text')}:{text}"
    )
    fields = kannel.parse_smpp_receipt(written)
    assert fields is not None
    assert (fields["id"], fields["stat"], fields["err"], fields["done_date"]) == (
        receipt_id,
        stat,
        err,
        date,
    )
    assert fields.get("text") == (text.strip() or None)
    assert kannel.parse_receipt_date(date, "UTC") == done.replace(
        second=0, microsecond=0, tzinfo=UTC
    )


@EXAMPLES
@given(text=st.one_of(any_text, receipt_dates), timezone=st.sampled_from(["UTC", "Asia/Tokyo"]))
def test_receipt_dates_are_a_time_or_none(text: str, timezone: str) -> None:
    moment = kannel.parse_receipt_date(text, timezone)
    assert moment is None or moment.tzinfo is UTC
