"""Tests of `dlrhub.providers.nrs360.callbacks`.

Most cases are recorded payloads in `tests/data/nrs360/`, one JSON file each:
`kind`, `method`, `content_type`, `query`, `body` (raw text, sent as UTF-8),
optional `options` (SourceOptions fields) and either `expected` (a subset of
`Event.to_dict()`) or `error` (a piece of the `NormalizeError` message).
Adding a case is adding a file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.ids import uuid7
from dlrhub.normalizers.base import NoMessageIdentity, NormalizeError, SourceOptions
from dlrhub.providers.nrs360.callbacks import ENGAGEMENT_EVENTS, EVENT_STATUSES, normalize
from tests.recorded_cases import load_case, options_of

CASES_DIR = Path(__file__).resolve().parents[2] / "data" / "nrs360"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
RECEIVED_AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
SOURCE = "nrs360-test"
FORM = "application/x-www-form-urlencoded"


def raw_callback(
    kind: str,
    *,
    body: bytes = b"",
    query: str = "",
    method: str = "POST",
    content_type: str = FORM,
    received_at: datetime = RECEIVED_AT,
) -> RawCallback:
    return RawCallback(
        source=SOURCE,
        provider="nrs360",
        kind=kind,
        method=method,
        query=query,
        content_type=content_type,
        body=body,
        received_at=received_at,
    )


def normalize_one(raw: RawCallback, options: SourceOptions | None = None) -> Event:
    events = normalize(raw, options or SourceOptions())
    assert len(events) == 1
    return events[0]


# ---- recorded payloads -------------------------------------------------------------


def test_recorded_payloads_exist() -> None:
    assert len(CASE_FILES) >= 40, f"expected the recorded payloads in {CASES_DIR}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_recorded_payload(path: Path) -> None:
    case = load_case(path)
    assert case["kind"] in {"events", "dlr", "progress"}
    assert ("expected" in case) != ("error" in case), "a case has `expected` or `error`"
    raw = raw_callback(
        case["kind"],
        body=case["body"].encode("utf-8"),
        query=case["query"],
        method=case["method"],
        content_type=case["content_type"],
    )
    options = options_of(case)

    if "error" in case:
        with pytest.raises(NormalizeError, match=re.escape(case["error"])):
            normalize(raw, options)
        return

    event = normalize_one(raw, options)
    actual = event.to_dict()
    expected = case["expected"]
    assert {name: actual[name] for name in expected} == expected
    assert actual["provider"] == "nrs360"
    assert actual["source"] == SOURCE
    assert actual["seq"] == 0
    assert event.received_at == RECEIVED_AT
    assert event.id == uuid7(RECEIVED_AT, f"{raw.dedupe_key()}/0".encode())
    assert Event.from_json(event.to_json()) == event


def test_recorded_payloads_cover_every_documented_event() -> None:
    documented = set(EVENT_STATUSES) | ENGAGEMENT_EVENTS
    assert len(documented) == 15
    seen = {
        case["expected"]["provider_status"]
        for case in map(load_case, CASE_FILES)
        if case["kind"] == "events" and "provider_status" in case.get("expected", {})
    }
    assert documented <= seen


# ---- kinds -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["", "event", "DLR", "bounces"])
def test_unknown_kind_is_a_normalize_error(kind: str) -> None:
    with pytest.raises(NormalizeError, match="not"):
        normalize(raw_callback(kind, body=b"event=delivered"), SourceOptions())


# ---- status_map ------------------------------------------------------------------


def test_status_map_overrides_event_status_case_insensitively() -> None:
    options = SourceOptions(status_map={"SOFT_BOUNCED": Status.QUEUED, "Read": Status.DELIVERED})
    soft = normalize_one(raw_callback("events", body=b"event=soft_bounced"), options)
    assert (soft.type, soft.status, soft.provider_status) == (
        EventType.MESSAGE_STATUS,
        Status.QUEUED,
        "soft_bounced",
    )
    read = normalize_one(raw_callback("events", body=b"event=read"), options)
    assert read.status == Status.DELIVERED


def test_status_map_gives_an_engagement_event_a_status_but_keeps_its_type() -> None:
    options = SourceOptions(status_map={"opened": Status.DELIVERED})
    event = normalize_one(raw_callback("events", body=b"event=opened"), options)
    assert (event.type, event.status) == (EventType.MESSAGE_ENGAGEMENT, Status.DELIVERED)


def test_status_map_overrides_kannel_meaning_of_dlr_status() -> None:
    options = SourceOptions(status_map={"1": Status.SENT, "entregada": Status.DELIVERED})
    delivered = raw_callback("dlr", query="status=1&ref=r-1")
    assert normalize_one(delivered).status == Status.DELIVERED
    assert normalize_one(delivered, options).status == Status.SENT
    event = normalize_one(raw_callback("dlr", query="status=ENTREGADA&ref=r-1"), options)
    assert (event.status, event.provider_status) == (Status.DELIVERED, "ENTREGADA")


def test_status_map_with_a_value_that_is_no_status_is_a_normalize_error() -> None:
    status_map: dict[str, Any] = {"1": "entregado"}
    with pytest.raises(NormalizeError, match="status_map"):
        normalize(
            raw_callback("dlr", query="status=1&ref=r-1"), SourceOptions(status_map=status_map)
        )


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("01", Status.DELIVERED),
        ("008", Status.SENT),
        (" 16 ", Status.REJECTED),
        ("3", Status.UNKNOWN),
        ("9999999999", Status.UNKNOWN),
        ("acceptd", Status.ACCEPTED),
        ("ENROUTE", Status.SENT),
        ("buffered", Status.QUEUED),
        ("deleted", Status.FAILED),
        ("rejectd", Status.REJECTED),
        ("unknown", Status.UNKNOWN),
        ("%25d", Status.UNKNOWN),
    ],
)
def test_dlr_status_values(value: str, status: Status) -> None:
    assert normalize_one(raw_callback("dlr", query=f"status={value}&ref=r-1")).status == status


# ---- dlr_params and plus signs ---------------------------------------------------


def test_a_receipt_without_identity_is_an_error_until_dlr_params_name_the_ref() -> None:
    # The document's own example (providers/360nrs-api.txt l.301) with the default names.
    raw = raw_callback("dlr", query="sender=NRSTEST&phone=34666555444&status=1&customId=123456")
    with pytest.raises(NoMessageIdentity) as caught:
        normalize(raw, SourceOptions())
    assert isinstance(caught.value, NormalizeError)
    assert str(caught.value).startswith("no_message_identity: ")
    assert "'customId'" in str(caught.value)  # names what it did have
    event = normalize_one(raw, SourceOptions(dlr_params={"ref": "customId"}))
    assert (event.message_id, event.correlation_id) == ("123456", "123456")
    by_id = normalize_one(raw_callback("dlr", query="status=1&id=6578a1f3c2b9e"))
    assert (by_id.message_id, by_id.correlation_id) == ("6578a1f3c2b9e", None)


def test_a_missing_status_is_reported_before_a_missing_identity() -> None:
    with pytest.raises(NormalizeError, match="no status"):
        normalize(raw_callback("dlr", query="phone=34666555444"), SourceOptions())


def test_dlr_params_rename_the_query_parameters() -> None:
    options = SourceOptions(
        dlr_params={
            "status": "estado",
            "phone": "movil",
            "sender": "remitente",
            "ref": "customId",
            "message_id": "msgid",
            "timestamp": "fecha",
        }
    )
    query = (
        "estado=DELIVRD&movil=%2B34666555444&remitente=TIENDAEJ&customId=123456"
        "&msgid=6578a1f3c2b9e&fecha=1733130936&status=8&smsc_id=vodafone-es"
    )
    event = normalize_one(raw_callback("dlr", query=query), options)
    assert event.status == Status.DELIVERED
    assert event.provider_status == "DELIVRD"
    assert event.recipient == "+34666555444"
    assert event.sender == "TIENDAEJ"
    assert event.correlation_id == "123456"
    assert event.message_id == "6578a1f3c2b9e"
    assert event.occurred_at == datetime(2024, 12, 2, 9, 15, 36, tzinfo=UTC)
    # smsc_id keeps its default name; `status` is no longer ours, so it is kept as is.
    assert event.extra == {"smsc_id": "vodafone-es", "params": {"status": "8"}}


def test_dlr_params_rename_the_status_parameter_in_the_error() -> None:
    options = SourceOptions(dlr_params={"status": "estado"})
    with pytest.raises(NormalizeError, match="'estado'"):
        normalize(raw_callback("dlr", query="status=1"), options)


def test_literal_plus_is_kept_by_default() -> None:
    event = normalize_one(raw_callback("dlr", query="status=1&phone=+34666555444&sender=A+B&ref=r"))
    assert (event.recipient, event.sender) == ("+34666555444", "A+B")


def test_dlr_plus_as_space_reads_plus_as_a_space() -> None:
    options = SourceOptions(dlr_plus_as_space=True, timezone="Europe/Madrid")
    query = (
        "status=1&phone=%2B34666555444&sender=Cl%C3%ADnica+Sur&ref=cita+88123&ts=2024-12-02+10:15"
    )
    event = normalize_one(raw_callback("dlr", query=query), options)
    assert event.recipient == "+34666555444"
    assert event.sender == "Clínica Sur"
    assert event.correlation_id == "cita 88123"
    assert event.occurred_at == datetime(2024, 12, 2, 9, 15, tzinfo=UTC)


def test_invalid_percent_escapes_are_kept_and_bad_utf8_replaced() -> None:
    event = normalize_one(raw_callback("dlr", query="status=1&ref=%zz%C3&other=%FF"))
    assert event.correlation_id == "%zz\ufffd"
    assert event.extra["params"] == {"other": "\ufffd"}


def test_first_of_repeated_parameters_counts() -> None:
    event = normalize_one(raw_callback("dlr", query="status=1&status=2&x=a&x=b&ref=r"))
    assert event.status == Status.DELIVERED
    assert event.extra["params"] == {"x": "a"}


# ---- token -----------------------------------------------------------------------


def test_redacted_token_is_left_out_of_extra() -> None:
    query = "status=1&phone=%2B34666555444&token=[REDACTED]&TOKEN=[REDACTED]&campaign=navidad&id=m"
    event = normalize_one(raw_callback("dlr", query=query))
    assert event.extra == {"params": {"campaign": "navidad"}}
    assert b"REDACTED" not in event.to_json()
    assert b"token" not in event.to_json().lower()


# ---- times -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "timezone", "expected"),
    [
        # Madrid is UTC+1 in winter and UTC+2 in summer.
        ("2024-12-02 10:15:31", "Europe/Madrid", datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)),
        ("2024-07-02 10:15:31", "Europe/Madrid", datetime(2024, 7, 2, 8, 15, 31, tzinfo=UTC)),
        ("2024-12-02 10:15:31", "America/Bogota", datetime(2024, 12, 2, 15, 15, 31, tzinfo=UTC)),
        ("2024-12-02 10:15:31", "UTC", datetime(2024, 12, 2, 10, 15, 31, tzinfo=UTC)),
        ("2024-12-02 10:15", "Europe/Madrid", datetime(2024, 12, 2, 9, 15, tzinfo=UTC)),
        ("2024-12-02T10:15:31", "Europe/Madrid", datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)),
        ("02/12/2024 10:15:31", "Europe/Madrid", datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)),
        ("20241202101531", "Europe/Madrid", datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)),
        # An offset wins over the source's zone.
        ("2024-12-02T10:15:31Z", "America/Bogota", datetime(2024, 12, 2, 10, 15, 31, tzinfo=UTC)),
        (
            "2024-12-02T10:15:31+00:00",
            "Europe/Madrid",
            datetime(2024, 12, 2, 10, 15, 31, tzinfo=UTC),
        ),
        (
            "2024-12-02 10:15:31-0500",
            "Europe/Madrid",
            datetime(2024, 12, 2, 15, 15, 31, tzinfo=UTC),
        ),
        (
            "2024-12-02T10:15:31.123456789+01",
            "UTC",
            datetime(2024, 12, 2, 9, 15, 31, 123456, tzinfo=UTC),
        ),
        # Unix seconds have no zone.
        ("1733130931", "America/Bogota", datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)),
        (" 0 ", "Europe/Madrid", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_event_dates(text: str, timezone: str, expected: datetime) -> None:
    body = f"event=delivered&eventDate={quote_plus(text)}".encode()
    event = normalize_one(raw_callback("events", body=body), SourceOptions(timezone=timezone))
    assert event.occurred_at == expected
    assert event.occurred_at is not None and event.occurred_at.utcoffset() is not None
    assert event.extra["eventDate"] == text


@pytest.mark.parametrize(
    "text",
    [
        "2024-12-02",
        "10:15:31",
        "2024-13-02 10:15:31",
        "31/02/2024 10:15:31",
        "02/12/24 10:15",
        "2024-12-02T10:15:31+25:00",
        "1969-12-31 23:59:59",
        "253402300800",
        "99999999999999999999",
        "\uff11\uff17\uff13\uff13\uff11\uff13\uff10\uff19\uff13\uff11",  # fullwidth digits
        "hoy",
    ],
)
def test_bad_event_dates_are_normalize_errors(text: str) -> None:
    body = f"event=delivered&eventDate={text}".encode()
    with pytest.raises(NormalizeError, match="'eventDate'"):
        normalize(raw_callback("events", body=body), SourceOptions())


def test_unencoded_plus_of_an_offset_is_read_as_plus() -> None:
    body = b"event=delivered&eventDate=2024-12-02T10:15:31+01:00"
    event = normalize_one(raw_callback("events", body=body), SourceOptions(timezone="UTC"))
    assert event.occurred_at == datetime(2024, 12, 2, 9, 15, 31, tzinfo=UTC)
    assert event.extra["eventDate"] == "2024-12-02T10:15:31 01:00"


def test_blank_event_date_means_no_occurred_at() -> None:
    event = normalize_one(raw_callback("events", body=b"event=sent&eventDate=+++"))
    assert event.occurred_at is None
    assert "eventDate" not in event.extra


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/\x00"])
def test_invalid_timezone_is_a_normalize_error_only_when_needed(timezone: str) -> None:
    options = SourceOptions(timezone=timezone)
    with pytest.raises(NormalizeError, match="timezone"):
        normalize(raw_callback("events", body=b"event=sent&eventDate=2024-12-02+10:15"), options)
    with pytest.raises(NormalizeError, match="timezone"):
        normalize(raw_callback("dlr", query="status=1&ref=r&ts=2024-12-02+10:15"), options)
    aware = normalize_one(
        raw_callback("events", body=b"event=sent&eventDate=2024-12-02T10:15:00Z"), options
    )
    assert aware.occurred_at == datetime(2024, 12, 2, 10, 15, tzinfo=UTC)
    stamped = raw_callback("dlr", query="status=1&ref=r&ts=1733130931")
    assert normalize_one(stamped, options).occurred_at


# ---- ids -------------------------------------------------------------------------


def test_ids_are_deterministic() -> None:
    body = b"id=6578a1f3c2b9e&channel=sms&event=delivered&eventDate=2024-12-02+10%3A15%3A36"
    first = normalize(raw_callback("events", body=body), SourceOptions())
    again = normalize(raw_callback("events", body=body), SourceOptions())
    assert [event.id for event in first] == [event.id for event in again]
    assert first == again


def test_ids_differ_with_payload_and_reception_time() -> None:
    body = b"id=6578a1f3c2b9e&channel=sms&event=delivered"
    base = normalize_one(raw_callback("events", body=body)).id
    later = raw_callback(
        "events", body=body, received_at=datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC)
    )
    assert normalize_one(later).id != base
    assert normalize_one(raw_callback("events", body=body + b"&extra=")).id != base
    assert normalize_one(raw_callback("events", body=body)).id == base


# ---- event notifications ---------------------------------------------------------


def test_raw_latin1_body_is_decoded() -> None:
    body = "event=delivered&campaignName=Campaña Año Nuevo&smtpResponse=250 OK".encode("latin-1")
    event = normalize_one(raw_callback("events", body=body))
    assert event.extra["campaignName"] == "Campaña Año Nuevo"
    assert event.extra["smtpResponse"] == "250 OK"


def test_numeric_fields_become_int_only_when_plain_decimals() -> None:
    body = b"event=sent&contactId=007&campaignId=123456789012345678901234&formId=42"
    event = normalize_one(raw_callback("events", body=body))
    assert event.extra == {
        "contactId": "007",
        "campaignId": "123456789012345678901234",
        "formId": 42,
    }


def test_blank_and_missing_fields_are_left_out() -> None:
    body = (
        b"id=&channel=&contactId=&campaignId=&formId=&campaignName=&event=sent&extra=&smtpResponse="
    )
    event = normalize_one(raw_callback("events", body=body))
    assert (event.message_id, event.channel, event.occurred_at, event.extra) == (
        None,
        None,
        None,
        {},
    )
    assert (event.recipient, event.sender, event.correlation_id) == (None, None, None)


def test_extra_json_of_any_shape_is_kept() -> None:
    event = normalize_one(raw_callback("events", body=b"event=opened&extra=%5B1%2C+null%5D"))
    assert event.extra == {"extra": [1, None]}
    null = normalize_one(raw_callback("events", body=b"event=opened&extra=null"))
    assert null.extra == {"extra": None}


def test_extra_json_nested_deeper_than_storable_is_a_normalize_error() -> None:
    body = b"event=clicked&extra=" + b"[" * 400 + b"]" * 400
    with pytest.raises(NormalizeError, match="stored as JSON"):
        normalize(raw_callback("events", body=body), SourceOptions())


def test_provider_status_keeps_the_event_as_sent() -> None:
    event = normalize_one(raw_callback("events", body=b"event=+Hard_Bounced+"))
    assert (event.status, event.provider_status) == (Status.FAILED, " Hard_Bounced ")


# ---- progress notifications ------------------------------------------------------


def test_progress_with_string_id_and_epoch_date() -> None:
    body = (
        b'{"data": {"id": "val-77", "status": "finished",'
        b' "finishedAt": "", "updatedAt": 1537428236}}'
    )
    event = normalize_one(raw_callback("progress", body=body, content_type="application/json"))
    assert event.message_id == "val-77"
    assert event.occurred_at == datetime(2018, 9, 20, 7, 23, 56, tzinfo=UTC)


def test_progress_without_id_or_dates() -> None:
    event = normalize_one(raw_callback("progress", body=b'{"data": {"status": "started"}}'))
    assert (event.message_id, event.occurred_at, event.extra) == (None, None, {"status": "started"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": {"id": true, "status": "started"}}', "'data.id'"),
        (b'{"data": {"id": [2], "status": "started"}}', "'data.id'"),
        (b'{"data": {"status": 3}}', "'data.status'"),
        (b'{"data": {"status": "  "}}', "'data.status'"),
        (b'{"data": {"status": "started", "createdAt": {"date": "x"}}}', "'data.createdAt'"),
        (b'{"data": "started"}', "'data' object"),
        (b'"started"', "not a JSON object"),
        (b"", "not valid JSON"),
        (b'{"data": {"status": "\xff"}}', "not valid JSON"),
    ],
)
def test_bad_progress_notifications(body: bytes, message: str) -> None:
    with pytest.raises(NormalizeError, match=re.escape(message)):
        normalize(raw_callback("progress", body=body), SourceOptions())
