"""Tests of `dlrhub.providers.smsgateway.callbacks`.

Most cases are recorded payloads in `tests/data/smsgateway/`, one JSON file each:
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

import pytest

from dlrhub.event import Event, RawCallback, Status
from dlrhub.ids import uuid7
from dlrhub.normalizers.base import NoMessageIdentity, NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS, canonical_name
from dlrhub.providers.smsgateway.callbacks import DEFAULT_DLR_PARAMS, JASMIN_ACK, normalize
from dlrhub.providers.smsgateway.fake import FakeSmsGateway
from tests.recorded_cases import load_case, options_of

CASES_DIR = Path(__file__).resolve().parents[2] / "data" / "smsgateway"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
RECEIVED_AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
SOURCE = "gateway-test"
FORM = "application/x-www-form-urlencoded"


def raw_callback(
    query: str = "",
    *,
    body: bytes = b"",
    method: str = "GET",
    kind: str = "dlr",
    received_at: datetime = RECEIVED_AT,
) -> RawCallback:
    return RawCallback(
        source=SOURCE,
        provider="smsgateway",
        kind=kind,
        method=method,
        query=query,
        content_type=FORM if body else "",
        body=body,
        received_at=received_at,
    )


def normalize_one(raw: RawCallback, options: SourceOptions | None = None) -> Event:
    events = normalize(raw, options or SourceOptions())
    assert len(events) == 1
    return events[0]


# ---- recorded payloads -------------------------------------------------------------


def test_recorded_payloads_exist() -> None:
    names = {path.stem for path in CASE_FILES}
    assert len(names) >= 50, f"expected the recorded payloads in {CASES_DIR}"
    for prefix in ("kannel_get_", "kannel_post_", "jasmin_level1_", "jasmin_level2_", "junk_"):
        assert any(name.startswith(prefix) for name in names), prefix


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_recorded_payload(path: Path) -> None:
    case = load_case(path)
    assert case["kind"] == "dlr"
    assert ("expected" in case) != ("error" in case), "a case has `expected` or `error`"
    raw = RawCallback(
        source=SOURCE,
        provider="smsgateway",
        kind=case["kind"],
        method=case["method"],
        query=case["query"],
        content_type=case["content_type"],
        body=case["body"].encode("utf-8"),
        received_at=RECEIVED_AT,
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
    assert actual["provider"] == "smsgateway"
    assert (actual["source"], actual["type"], actual["channel"]) == (
        SOURCE,
        "message.status",
        "sms",
    )
    assert actual["seq"] == 0
    assert event.received_at == RECEIVED_AT
    assert event.id == uuid7(RECEIVED_AT, f"{raw.dedupe_key()}/0".encode())
    assert Event.from_json(event.to_json()) == event


# ---- the provider ------------------------------------------------------------------


def test_the_provider_serves_one_route_answered_ack_jasmin() -> None:
    provider = PROVIDERS["smsgateway"]
    assert canonical_name("Kannel") == canonical_name("JASMIN") == "smsgateway"
    assert provider.source is not None
    (route,) = provider.source.routes
    assert (route.kind, route.methods, route.body) == ("dlr", ("GET", "POST"), "form")
    assert route.ack == JASMIN_ACK == b"ACK/Jasmin"
    assert provider.source.dlr_params == DEFAULT_DLR_PARAMS
    assert provider.account is None
    assert provider.fake_class() is FakeSmsGateway


def test_printed_urls_carry_the_escapes_under_the_sources_names() -> None:
    spec = PROVIDERS["smsgateway"].source
    assert spec is not None
    options = SourceOptions(dlr_params={**DEFAULT_DLR_PARAMS, "status": "estado", "ref": "pedido"})
    (kannel, jasmin) = spec.urls("https://dlr.example.com/hooks/gw", "T0k", options)
    assert kannel[1] == (
        "https://dlr.example.com/hooks/gw/dlr?token=T0k&estado=%d&phone=%P&sender=%p&msgid=%F"
        "&smsc_id=%i&internal_id=%I&reply=%A&ts=%T&pedido=<your-ref>"
    )
    assert jasmin[1] == "https://dlr.example.com/hooks/gw/dlr?token=T0k&pedido=<your-ref>"


@pytest.mark.parametrize("kind", ["", "events", "DLR", "progress"])
def test_unknown_kind_is_a_normalize_error(kind: str) -> None:
    with pytest.raises(NormalizeError, match="'dlr'"):
        normalize(raw_callback("status=1", kind=kind), SourceOptions())


# ---- Kannel status -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("1", Status.DELIVERED),
        ("01", Status.DELIVERED),
        ("2", Status.UNDELIVERED),
        ("4", Status.QUEUED),
        ("008", Status.SENT),
        ("16", Status.REJECTED),
        ("34", Status.EXPIRED),
        ("66", Status.UNKNOWN),
        ("3", Status.UNKNOWN),
        ("9999999999", Status.UNKNOWN),
        ("delivrd", Status.DELIVERED),
        ("REJECTD", Status.REJECTED),
        ("enroute", Status.SENT),
        ("entregado", Status.UNKNOWN),  # 360NRS's Spanish guesses are not the gateways'
    ],
)
def test_kannel_status_values(value: str, status: Status) -> None:
    assert normalize_one(raw_callback(f"status={value}&msgid=m-1")).status == status


@pytest.mark.parametrize(
    ("bit", "stat", "status"),
    [
        ("2", "EXPIRED", Status.EXPIRED),  # the receipt says more than Kannel's bit
        ("2", "UNKNOWN", Status.UNDELIVERED),  # ... unless it says nothing
        ("2", "SKIPPED", Status.UNDELIVERED),
        ("1", "UNDELIV", Status.UNDELIVERED),  # a receipt against its bit: the receipt wins
        ("4", "BUFFRED", Status.QUEUED),
        ("8", "DELIVRD", Status.DELIVERED),
        (None, "DELIVRD", Status.DELIVERED),
        (None, "WHATEVR", Status.UNKNOWN),
    ],
)
def test_receipt_stat_refines_the_bit(bit: str | None, stat: str, status: Status) -> None:
    reply = f"id:abc+sub:001+dlvrd:000+stat:{stat}+err:000"
    query = f"ref=r-1&reply={reply}" if bit is None else f"status={bit}&ref=r-1&reply={reply}"
    event = normalize_one(raw_callback(query))
    assert event.status == status
    assert event.provider_status == (bit if bit is not None else stat)


def test_status_map_with_a_value_that_is_no_status_is_a_normalize_error() -> None:
    status_map: dict[str, Any] = {"1": "entregado"}
    with pytest.raises(NormalizeError, match="status_map"):
        normalize(raw_callback("status=1&ref=r-1"), SourceOptions(status_map=status_map))


# ---- parameters --------------------------------------------------------------------


def test_dlr_params_a_source_does_not_rename_keep_their_defaults() -> None:
    options = SourceOptions(dlr_params={"status": "estado"})
    event = normalize_one(raw_callback("estado=1&ref=r-1&msgid=abc&status=2"), options)
    assert (event.status, event.message_id, event.correlation_id) == (
        Status.DELIVERED,
        "abc",
        "r-1",
    )
    assert event.extra["params"] == {"status": "2"}


def test_first_of_repeated_parameters_counts() -> None:
    event = normalize_one(raw_callback("status=1&status=2&x=a&x=b&ref=r"))
    assert event.status == Status.DELIVERED
    assert event.extra["params"] == {"x": "a"}


def test_invalid_percent_escapes_are_kept_and_bad_utf8_replaced() -> None:
    event = normalize_one(raw_callback("status=1&ref=%zz%C3&other=%FF"))
    assert event.correlation_id == "%zz\ufffd"
    assert event.extra["params"] == {"other": "\ufffd"}


def test_query_parameters_come_before_the_bodys() -> None:
    event = normalize_one(raw_callback("status=8", body=b"status=1&ref=r-9", method="POST"))
    assert (event.status, event.correlation_id) == (Status.SENT, "r-9")


def test_dlr_plus_as_space_changes_nothing_here() -> None:
    query = "status=1&phone=%2B34600111222&sender=Clinica+Sur&ref=r"
    for plus_as_space in (False, True):
        event = normalize_one(raw_callback(query), SourceOptions(dlr_plus_as_space=plus_as_space))
        assert (event.recipient, event.sender) == ("+34600111222", "Clinica Sur")


def test_a_timestamp_is_utc_whatever_the_source_zone_but_a_receipt_date_is_not() -> None:
    options = SourceOptions(timezone="America/Bogota")
    stamped = normalize_one(raw_callback("status=1&ref=r&ts=1733134576"), options)
    assert stamped.occurred_at == datetime(2024, 12, 2, 10, 16, 16, tzinfo=UTC)
    receipt = "id:a+stat:DELIVRD+done+date:2412021016"
    dated = normalize_one(raw_callback(f"status=1&ref=r&reply={receipt}"), options)
    assert dated.occurred_at == datetime(2024, 12, 2, 15, 16, tzinfo=UTC)


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "", "../../etc/passwd"])
def test_unknown_timezone_is_an_error_only_when_a_receipt_date_needs_it(timezone: str) -> None:
    options = SourceOptions(timezone=timezone)
    with pytest.raises(NormalizeError, match="timezone"):
        normalize(raw_callback("status=1&ref=r&reply=stat:DELIVRD+done+date:2412021016"), options)
    assert normalize_one(raw_callback("status=1&ref=r&ts=1733134576"), options).occurred_at


# ---- ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "status=1&phone=%2B34600111222",  # Kannel without %F or ref
        "status=1&msgid=%25F&ref=+",  # %F left unfilled, ref blank
        "id=+&level=2&message_status=DELIVRD",  # Jasmin without id or ref
    ],
)
def test_a_dlr_without_identity_is_quarantined_as_no_message_identity(query: str) -> None:
    with pytest.raises(NoMessageIdentity, match=r"^no_message_identity: "):
        normalize(raw_callback(query), SourceOptions())
    fixed = normalize_one(
        raw_callback(f"{query}&pedido=order-9"), SourceOptions(dlr_params={"ref": "pedido"})
    )
    assert (fixed.message_id, fixed.correlation_id) == ("order-9", "order-9")


def test_a_retry_is_the_same_event() -> None:
    body = b"id=abc&level=2&message_status=DELIVRD&donedate=2412021016"
    first = normalize(raw_callback("token=[REDACTED]", body=body, method="POST"), SourceOptions())
    again = normalize(raw_callback("token=[REDACTED]", body=body, method="POST"), SourceOptions())
    assert first == again


def test_the_same_dlr_by_get_and_by_post_are_two_callbacks() -> None:
    by_get = normalize_one(raw_callback("id=abc&level=1&message_status=ESME_ROK"))
    by_post = normalize_one(
        raw_callback(body=b"id=abc&level=1&message_status=ESME_ROK", method="POST")
    )
    assert by_get.id != by_post.id
    assert by_get.message_id == by_post.message_id == "abc"


# ---- Jasmin ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_status", "status"),
    [
        ("ESME_ROK", Status.SENT),
        ("esme_rok", Status.SENT),
        ("ESME_RTHROTTLED", Status.QUEUED),
        ("ESME_RMSGQFUL", Status.QUEUED),
        ("ESME_RSYSERR", Status.QUEUED),
        ("ESME_RINVSCHED", Status.QUEUED),
        ("ESME_RINVDSTADR", Status.REJECTED),
        ("ESME_RSUBMITFAIL", Status.REJECTED),
        ("DELIVRD", Status.DELIVERED),
        ("UNDELIV", Status.UNDELIVERED),
        ("EXPIRED", Status.EXPIRED),
        ("REJECTD", Status.REJECTED),
        ("DELETED", Status.FAILED),
        ("ACCEPTD", Status.ACCEPTED),
        ("UNKNOWN", Status.UNKNOWN),
        ("ENROUTE", Status.SENT),
        ("1", Status.DELIVERED),
        ("BOGUS", Status.UNKNOWN),
    ],
)
def test_jasmin_message_status(message_status: str, status: Status) -> None:
    body = f"id=abc&level=2&message_status={message_status}".encode()
    event = normalize_one(raw_callback(body=body, method="POST"))
    assert (event.status, event.provider_status) == (status, message_status)
    assert event.extra["format"] == "jasmin"


def test_a_level_alone_is_enough_to_be_jasmin() -> None:
    with pytest.raises(NormalizeError, match="Jasmin"):
        normalize(raw_callback("level=1&status=1"), SourceOptions())
