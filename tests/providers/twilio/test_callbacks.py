"""Tests of `dlrhub.providers.twilio.callbacks`.

Most cases are recorded payloads in `tests/data/twilio/`, one JSON file each:
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

from dlrhub.event import Event, EventType, RawCallback, Status
from dlrhub.ids import uuid7
from dlrhub.normalizers.base import NormalizeError, SourceOptions
from dlrhub.providers import PROVIDERS
from dlrhub.providers.twilio.callbacks import STATUSES, normalize
from tests.recorded_cases import load_case, options_of

CASES_DIR = Path(__file__).resolve().parents[2] / "data" / "twilio"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))
RECEIVED_AT = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
SOURCE = "twilio-test"
FORM = "application/x-www-form-urlencoded"


def raw_callback(
    body: bytes, *, kind: str = "status", received_at: datetime = RECEIVED_AT
) -> RawCallback:
    return RawCallback(
        source=SOURCE,
        provider="twilio",
        kind=kind,
        method="POST",
        query="",
        content_type=FORM,
        body=body,
        received_at=received_at,
    )


def normalize_one(raw: RawCallback, options: SourceOptions | None = None) -> Event:
    events = normalize(raw, options or SourceOptions())
    assert len(events) == 1
    return events[0]


# ---- recorded payloads -------------------------------------------------------------


def test_recorded_payloads_exist() -> None:
    assert len(CASE_FILES) >= 30, f"expected the recorded payloads in {CASES_DIR}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_recorded_payload(path: Path) -> None:
    case = load_case(path)
    assert ("expected" in case) != ("error" in case), "a case has `expected` or `error`"
    raw = RawCallback(
        source=SOURCE,
        provider="twilio",
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
    assert actual["provider"] == "twilio"
    assert actual["type"] == "message.status"
    assert actual["source"] == SOURCE
    assert actual["seq"] == 0
    assert event.received_at == RECEIVED_AT
    assert event.id == uuid7(RECEIVED_AT, f"{raw.dedupe_key()}/0".encode())
    assert Event.from_json(event.to_json()) == event


def test_recorded_payloads_cover_every_documented_status() -> None:
    assert len(STATUSES) == 13
    seen = {
        case["expected"]["provider_status"]
        for case in map(load_case, CASE_FILES)
        if "provider_status" in case.get("expected", {})
    }
    assert set(STATUSES) <= seen


def test_the_registry_serves_this_normalizer() -> None:
    provider = PROVIDERS["twilio"]
    assert provider.normalize is normalize
    assert provider.source is not None
    assert [route.kind for route in provider.source.routes] == ["status"]
    assert provider.source.secret_key == "auth_token"
    assert provider.source.dlr_params is None
    assert provider.account is None


# ---- kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["", "events", "dlr", "Status"])
def test_unknown_kind_is_a_normalize_error(kind: str) -> None:
    with pytest.raises(NormalizeError, match="'status'"):
        normalize(raw_callback(b"MessageSid=SM1&MessageStatus=sent", kind=kind), SourceOptions())


# ---- status_map --------------------------------------------------------------------


def test_status_map_is_checked_before_the_table() -> None:
    body = b"MessageSid=SM1&MessageStatus=read"
    assert normalize_one(raw_callback(body)).status == Status.DELIVERED
    options = SourceOptions(status_map={"READ": Status.SENT})
    event = normalize_one(raw_callback(body), options)
    assert (event.status, event.provider_status) == (Status.SENT, "read")


def test_status_map_with_a_value_that_is_no_status_is_a_normalize_error() -> None:
    status_map: dict[str, Any] = {"read": "seen"}
    with pytest.raises(NormalizeError, match="status_map"):
        normalize(
            raw_callback(b"MessageSid=SM1&MessageStatus=read"),
            SourceOptions(status_map=status_map),
        )


# ---- fields ------------------------------------------------------------------------


def test_form_decoding_plus_percent_and_bad_utf8() -> None:
    body = (
        b"MessageSid=+SM1+&MessageStatus=failed&ErrorMessage=Filtered+%E2%80%93+spam%2B"
        b"&To=%2B34600111222&Note=%FFok&Odd%3Dname=1"
    )
    event = normalize_one(raw_callback(body))
    assert event.message_id == "SM1"
    assert event.recipient == "+34600111222"
    assert event.extra == {
        "ErrorMessage": "Filtered \u2013 spam+",
        "Note": "\ufffdok",
        "Odd=name": "1",
    }


def test_a_field_without_equals_sign_is_blank() -> None:
    event = normalize_one(raw_callback(b"MessageSid=SM1&MessageStatus=sent&Flag&&"))
    assert event.extra == {}


@pytest.mark.parametrize(
    ("to", "sender", "channel", "recipient", "sender_address"),
    [
        ("+15558675310", "+15017122661", "sms", "+15558675310", "+15017122661"),
        (
            "whatsapp:+15558675310",
            "whatsapp:+14155238886",
            "whatsapp",
            "+15558675310",
            "+14155238886",
        ),
        ("WhatsApp:+15558675310", "", "whatsapp", "+15558675310", None),
        ("messenger:1234567890", "messenger:9876543210", "messenger", "1234567890", "9876543210"),
        ("rcs:+15558675310", "rcs:acme_agent", "rcs", "+15558675310", "acme_agent"),
        ("", "whatsapp:+14155238886", "whatsapp", None, "+14155238886"),
        ("whatsapp:", "+14155238886", "whatsapp", None, "+14155238886"),
    ],
)
def test_channel_prefix_of_to_and_from(
    to: str, sender: str, channel: str, recipient: str | None, sender_address: str | None
) -> None:
    from urllib.parse import urlencode

    body = urlencode({"MessageSid": "SM1", "MessageStatus": "sent", "To": to, "From": sender})
    event = normalize_one(raw_callback(body.encode()))
    assert (event.channel, event.recipient, event.sender) == (channel, recipient, sender_address)


# ---- times -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "timezone", "expected"),
    [
        ("2302141224", "UTC", datetime(2023, 2, 14, 12, 24, tzinfo=UTC)),
        ("0001010000", "UTC", datetime(2000, 1, 1, tzinfo=UTC)),
        ("9912312359", "UTC", datetime(2099, 12, 31, 23, 59, tzinfo=UTC)),
        (" 2302141224 ", "Europe/Madrid", datetime(2023, 2, 14, 11, 24, tzinfo=UTC)),
        ("2307141224", "Europe/Madrid", datetime(2023, 7, 14, 10, 24, tzinfo=UTC)),
        ("2302141224", "Asia/Kolkata", datetime(2023, 2, 14, 6, 54, tzinfo=UTC)),
        ("2402291200", "UTC", datetime(2024, 2, 29, 12, 0, tzinfo=UTC)),
    ],
)
def test_raw_dlr_done_date(text: str, timezone: str, expected: datetime) -> None:
    body = f"MessageSid=SM1&MessageStatus=delivered&RawDlrDoneDate={text}".encode()
    event = normalize_one(raw_callback(body), SourceOptions(timezone=timezone))
    assert event.occurred_at == expected
    assert event.extra["RawDlrDoneDate"] == text


@pytest.mark.parametrize(
    "text",
    [
        "2302291200",  # 2023 is no leap year
        "2313141224",
        "2302142460",
        "230214122",
        "23021412240",
        "2302-14-12",
        "\uff12\uff13\uff10\uff12\uff11\uff14\uff11\uff12\uff12\uff14",  # fullwidth digits
        "now",
    ],
)
def test_unreadable_raw_dlr_done_date_leaves_occurred_at_empty(text: str) -> None:
    body = f"MessageSid=SM1&MessageStatus=delivered&RawDlrDoneDate={text}".encode()
    event = normalize_one(raw_callback(body))
    assert (event.status, event.occurred_at) == (Status.DELIVERED, None)
    assert event.extra["RawDlrDoneDate"] == text


def test_unknown_timezone_is_an_error_only_when_a_date_needs_it() -> None:
    options = SourceOptions(timezone="Mars/Olympus")
    assert normalize_one(raw_callback(b"MessageSid=SM1&MessageStatus=sent"), options).status
    with pytest.raises(NormalizeError, match="timezone"):
        normalize(
            raw_callback(b"MessageSid=SM1&MessageStatus=delivered&RawDlrDoneDate=2302141224"),
            options,
        )


# ---- ids ---------------------------------------------------------------------------


def test_ids_are_deterministic_and_differ_with_payload_and_time() -> None:
    body = b"MessageSid=SM1&MessageStatus=delivered"
    first = normalize_one(raw_callback(body))
    assert normalize_one(raw_callback(body)) == first
    later = raw_callback(body, received_at=datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC))
    assert normalize_one(later).id != first.id
    assert normalize_one(raw_callback(body + b"&ErrorCode=")).id != first.id


def test_every_event_is_a_message_status() -> None:
    for word in [*STATUSES, "whatever"]:
        body = f"MessageSid=SM1&MessageStatus={word}".encode()
        assert normalize_one(raw_callback(body)).type == EventType.MESSAGE_STATUS
