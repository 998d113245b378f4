"""`[[alerts]]` and `[alerting]`: every problem named by its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlrhub.config import ConfigErrors, load_config, parse_config

CASES = [
    ({"kind": "delivery_rate_below"}, "alerts[0].below: is required with kind"),
    ({"kind": "delivery_rate_below", "below": 1.5}, "alerts[0].below: must be at most 1"),
    ({"kind": "delivery_rate_drop", "points": 10, "seconds": 3}, "alerts[0].seconds: does not"),
    ({"kind": "ttr_p90_above", "seconds": 30, "window": "90m"}, "alerts[0].window: must be whole"),
    ({"kind": "sink_lagging", "minutes": 5, "provider": "twilio"}, "alerts[0].provider: does"),
    ({"kind": "account_paused", "sinks": ["a"]}, "alerts[0].sinks: does not apply"),
    ({"kind": "quarantine_growing", "group_by": ["sink"]}, "alerts[0].group_by[0]: 'sink' is"),
    ({"kind": "delivery_rate_below", "below": 0.9, "min_messages": 0}, "alerts[0].min_messages"),
    ({"kind": "page_me"}, "alerts[0].kind: 'page_me' is not"),
    ({"kind": "sink_lagging", "minutes": 5, "sinks": ["hoook"]}, "no configured sink: 'hoook'"),
    ({"kind": "account_paused", "accounts": ["acme"]}, "no configured account: 'acme'"),
]


@pytest.mark.parametrize(("table", "problem"), CASES)
def test_a_wrong_rule_names_its_key(table: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_config({"alerts": [{"name": "r", **table}]})
    assert problem in str(raised.value)


def test_a_rule_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "dlrhub.toml"
    path.write_text(
        """
[alerting]
interval = "30s"

[[alerts]]
name = "es-drop"
kind = "delivery_rate_drop"
points = 10
window = "2h"
min_messages = 50
country = "ES"
group_by = ["provider"]
""",
        encoding="utf-8",
    )
    config = load_config(path, env={})
    (rule,) = config.alerts
    assert (rule.kind, rule.points, rule.span, rule.min_messages) == (
        "delivery_rate_drop",
        10,
        7200,
        50,
    )
    assert rule.filters == (("country", ("ES",)),) and rule.group_by == ("provider",)
    assert config.alerting.interval == 30


def test_names_are_unique_and_the_interval_a_second_at_least() -> None:
    rule = {"name": "r", "kind": "account_paused"}
    with pytest.raises(ConfigErrors) as raised:
        parse_config({"alerts": [rule, rule], "alerting": {"interval": "100ms"}})
    text = str(raised.value)
    assert "alerts[1].name: 'r' is used by another alert" in text
    assert "alerting.interval: must be 1s or more" in text


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "dlrhub.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n{example}', encoding="utf-8")
    config = load_config(path, env={})
    assert [rule.kind for rule in config.alerts] == [
        "delivery_rate_drop",
        "ttr_p90_above",
        "account_paused",
        "sink_lagging",
    ]
    (sink,) = config.sinks
    assert sink.kind == "webhook"
