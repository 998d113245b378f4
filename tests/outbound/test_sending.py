"""The checks a send request passes before any provider is called: one case per check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from dlrhub.outbound.sending import (
    MAX_RECIPIENTS,
    MAX_TEXT,
    SEND_CHECKS,
    SendRefused,
    _channels,
    _check_send,
    _sends_distinct_texts,
)
from dlrhub.outbound.settings import AccountConfig


@dataclass(frozen=True)
class Send:
    """A send request that passes every check unless a case changes one field."""

    provider: str = "uvox"
    recipients: list[str] = field(default_factory=lambda: ["13058888888", "13059999999"])
    text: str = "Hola"
    refs: list[str] = field(default_factory=lambda: ["r-1", "r-2"])
    channel: str = "sms"
    texts: Sequence[str] | None = None

    def check(self) -> None:
        account = AccountConfig(name="acct", provider=self.provider, base_url="http://x")
        _check_send(account, self.recipients, self.text, self.refs, self.channel, self.texts)


MANY = [f"1305{i:07d}" for i in range(MAX_RECIPIENTS + 1)]

# (check, request failing it and no earlier one, the exact message), in SEND_CHECKS order.
REFUSALS = [
    (
        "recipients_given",
        Send(recipients=[], refs=[]),
        "give at least one recipient, none of them blank",
    ),
    (
        "recipients_given",
        Send(recipients=["1305", ""]),
        "give at least one recipient, none of them blank",
    ),
    (
        "recipient_count",
        Send(recipients=MANY, refs=MANY),
        f"at most {MAX_RECIPIENTS} recipients per send",
    ),
    (
        "no_comma_in_recipients",
        Send(recipients=["1305,1306", "1307"]),
        "a recipient may not contain ','",
    ),
    ("one_ref_each", Send(refs=["r-1"]), "give one distinct ref per recipient, or none"),
    ("one_ref_each", Send(refs=["r-1", "r-1"]), "give one distinct ref per recipient, or none"),
    ("refs_url_safe", Send(refs=["r-1", "r 2"]), "ref 'r 2' is not 1-64 URL-safe characters"),
    (
        "refs_url_safe",
        Send(refs=["r-1", "x" * 90]),
        f"ref {'x' * 80!r} is not 1-64 URL-safe characters",
    ),
    ("one_text_each", Send(texts=["uno"]), "give one text per recipient in 'texts', or none"),
    (
        "distinct_texts_allowed",
        Send(provider="onurix", texts=["uno", "dos"]),
        "onurix sends one text to everyone",
    ),
    ("text_given", Send(text=""), "the text is empty"),
    ("text_length", Send(text="x" * (MAX_TEXT + 1)), f"the text is over {MAX_TEXT} characters"),
    ("channel", Send(channel="whatsapp"), "channel is 'sms' through uvox"),
    ("channel", Send(provider="uvox", channel="call"), "channel is 'sms' through uvox"),
    (
        "channel",
        Send(provider="onurix", channel="fax"),
        "channel is 'call' or 'sms' through onurix",
    ),
]


@pytest.mark.parametrize(
    ("send", "message"),
    [pytest.param(send, message, id=check) for check, send, message in REFUSALS],
)
def test_each_check_refuses_with_its_message(send: Send, message: str) -> None:
    with pytest.raises(SendRefused) as refused:
        send.check()
    assert (refused.value.code, str(refused.value)) == ("bad_request", message)


def test_every_check_has_a_case_in_order() -> None:
    names = [check.__name__.removeprefix("_check_") for check in SEND_CHECKS]
    assert names == list(dict.fromkeys(check for check, _, _ in REFUSALS))


@pytest.mark.parametrize(
    "send",
    [
        Send(),
        Send(provider="onurix", texts=["uno", "uno"]),  # one text, given per recipient
        Send(provider="conectaline", text="", texts=["uno", "dos"]),
        Send(provider="onurix", text="", channel="call"),  # a call needs no text
        Send(recipients=["1305"], refs=["a.b_c~d:e-f"], text="x" * MAX_TEXT),
    ],
)
def test_a_good_request_passes(send: Send) -> None:
    send.check()


def test_the_first_failing_check_decides_the_message() -> None:
    everything_wrong = Send(recipients=["1,2"], refs=[], text="", channel="fax")
    with pytest.raises(SendRefused, match="a recipient may not contain ','"):
        everything_wrong.check()
    with pytest.raises(SendRefused, match="the text is empty"):
        Send(text="", channel="fax").check()


@pytest.mark.parametrize(
    ("provider", "distinct_texts", "channels"),
    [
        ("conectaline", True, {"sms"}),
        ("uvox", True, {"sms"}),
        ("onurix", False, {"sms", "call"}),
        ("nrs360", False, {"sms"}),
    ],
)
def test_what_each_provider_may_be_asked(
    provider: str, distinct_texts: bool, channels: set[str]
) -> None:
    assert _sends_distinct_texts(provider) is distinct_texts
    assert _channels(provider) == channels
