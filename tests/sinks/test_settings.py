"""`[[sinks]]` parsing: defaults, kinds, filters, durations, env overrides, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlrhub.config import ConfigError, load_config
from dlrhub.event import EventType, Status
from dlrhub.sinks.webhook import WebhookOptions
from tests.sinks.conftest import SECRET

WEBHOOK = f"""
[[sinks]]
name = "analytics"
kind = "webhook"
url = "https://consumer.example/hooks/dlr?key=hidden-query-secret"
secret = "{SECRET}"
filter = {{ providers = ["360nrs"], types = ["message.status"], statuses = ["delivered"] }}
retry = {{ initial = "250ms", max = "2m", factor = 3, max_attempts = 5, max_age = "1h" }}
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "dlrhub.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=env or {})


def test_webhook_sink_with_filter_and_retry(tmp_path: Path) -> None:
    (sink,) = load(tmp_path, WEBHOOK).sinks
    assert (sink.name, sink.kind, sink.batch_size, sink.max_in_flight) == (
        "analytics", "webhook", 1, 4,
    )  # fmt: skip
    assert sink.filter.providers == {"nrs360"}
    assert sink.filter.types == {EventType.MESSAGE_STATUS}
    assert sink.filter.statuses == {Status.DELIVERED}
    retry = sink.retry
    assert (retry.initial, retry.max, retry.factor, retry.max_attempts, retry.max_age) == (
        0.25, 120, 3, 5, 3600,
    )  # fmt: skip
    assert isinstance(sink.options, WebhookOptions)
    assert "hidden-query-secret" not in repr(sink) and SECRET not in repr(sink)
    assert SECRET in sink.secrets()


def test_environment_overrides_sink_keys(tmp_path: Path) -> None:
    env = {
        "DLRHUB_SINKS__ANALYTICS__BATCH_SIZE": "50",
        "DLRHUB_SINKS__ANALYTICS__RETRY__MAX_ATTEMPTS": "9",
        "DLRHUB_SINKS__ANALYTICS__FILTER__STATUSES": "delivered,failed",
        "DLRHUB_SINKS__LOG__KIND": "jsonl",
        "DLRHUB_SINKS__LOG__PATH": str(tmp_path / "events.jsonl"),
    }
    analytics, log = load(tmp_path, WEBHOOK, env).sinks
    assert analytics.batch_size == 50 and analytics.retry.max_attempts == 9
    assert analytics.filter.statuses == {Status.DELIVERED, Status.FAILED}
    assert (log.name, log.kind) == ("log", "jsonl")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[sinks]]\nname = "a"\nkind = "kafka"', "sinks[0].kind: 'kafka' is not a sink kind"),
        ('[[sinks]]\nkind = "stdout"', "sinks[0].name: is required"),
        ('[[sinks]]\nname = "a"\nkind = "webhook"\nurl = "http://x"', "sinks[0].secret"),
        (
            '[[sinks]]\nname = "a"\nkind = "webhook"\nurl = "ftp://x"\nsecret = "whsec_AAAA"',
            "sinks[0].url: must be an http(s) URL",
        ),
        ('[[sinks]]\nname = "a"\nkind = "stdout"\ncolour = 1', "sinks[0].colour: unknown key"),
        (
            '[[sinks]]\nname = "a"\nkind = "stdout"\nfilter = { statuses = ["done"] }',
            "sinks[0].filter.statuses[0]: 'done' is not a status",
        ),
        (
            '[[sinks]]\nname = "a"\nkind = "stdout"\nretry = { max_age = "soon" }',
            "sinks[0].retry.max_age: must be a duration (e.g. 30s, 5m, 1h), not 'soon'",
        ),
        (
            '[[sinks]]\nname = "a"\nkind = "stdout"\n[[sinks]]\nname = "a"\nkind = "stdout"',
            "sinks[1].name: 'a' is used by another sink",
        ),
        (
            '[[sinks]]\nname = "a"\nkind = "nats"\nsubject = "x.{nope}"',
            "sinks[0].subject",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, text)


def test_every_error_of_every_sink_is_reported(tmp_path: Path) -> None:
    text = """
[[sinks]]
name = "a"
kind = "kafka"
batch_size = 0
topic = "dlr"

[[sinks]]
name = "b"
kind = "redis"
url = "http://cache:6379"
maxlen = -1
timeout = "0s"
filter = { statuses = ["done"], types = "message.status" }
"""
    env = {"DLRHUB_SINKS__B__RETRY__MAX_ATTEMPTS": "many"}
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text, env)
    assert str(error.value).splitlines() == [
        "sinks[0].kind: 'kafka' is not a sink kind (jsonl, nats, rabbitmq, redis, stdout, webhook)",
        "sinks[0].batch_size: must be greater than 0, not 0",
        "sinks[1].url: must be a redis://, rediss:// or unix:// URL",
        "sinks[1].maxlen: must be 0 (never trim) or more",
        "sinks[1].timeout: must be longer than 0",
        "sinks[1].filter.statuses[0]: 'done' is not a status (unknown, accepted, queued, sent,"
        " delivered, undelivered, failed, rejected, expired)",
        "sinks[1].retry.max_attempts: must be a whole number, not 'many'"
        " (from DLRHUB_SINKS__B__RETRY__MAX_ATTEMPTS)",
    ]


NEW_SECRET = "whsec_C2FtcGxlLXJvbGxlZC1rZXktMzItYnl0ZXMtbG9uZyE="
ROLLING = f"""
[[sinks]]
name = "hook"
kind = "webhook"
url = "https://consumer.example/hooks/dlr"
secret = ["{SECRET}", "{NEW_SECRET}"]
headers_style = "both"
"""


def test_a_webhook_secret_may_be_a_list_and_each_is_secret(tmp_path: Path) -> None:
    (sink,) = load(tmp_path, ROLLING).sinks
    assert isinstance(sink.options, WebhookOptions)
    assert sink.options.secret == (SECRET, NEW_SECRET)
    assert sink.options.headers_style == "both"
    assert {SECRET, NEW_SECRET, NEW_SECRET.removeprefix("whsec_")} <= set(sink.secrets())
    assert SECRET not in repr(sink) and NEW_SECRET not in repr(sink)
    (single,) = load(tmp_path, WEBHOOK).sinks
    assert isinstance(single.options, WebhookOptions)
    assert (single.options.secret, single.options.headers_style) == ((SECRET,), "standard")


def test_webhook_secrets_from_one_variable(tmp_path: Path) -> None:
    env = {"DLRHUB_SINKS__ANALYTICS__SECRET": f"{NEW_SECRET},{SECRET}"}
    (sink,) = load(tmp_path, WEBHOOK, env).sinks
    assert isinstance(sink.options, WebhookOptions)
    assert sink.options.secret == (NEW_SECRET, SECRET)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (f'["{SECRET}", "whsec_sentinel-secret!!"]', "sinks[0].secret[1]: the secret must be"),
        ('["whsec_c2VudGluZWwtc2VjcmV0"]', "sinks[0].secret[0]: must decode to 16 or more"),
        ("[]", "sinks[0].secret: must hold at least one secret"),
    ],
)
def test_each_webhook_secret_is_checked_and_never_shown(
    tmp_path: Path, secret: str, message: str
) -> None:
    text = ROLLING.replace(f'["{SECRET}", "{NEW_SECRET}"]', secret)
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert str(error.value).startswith(message)
    assert "sentinel" not in str(error.value) and "c2VudGluZWwtc2VjcmV0" not in str(error.value)


def test_headers_style_is_one_of_three(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("'standard', 'svix' or 'both'")):
        load(tmp_path, ROLLING.replace('"both"', '"stripe"'))
