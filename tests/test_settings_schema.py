"""The typed section reader: each type's conversion and message, and every error collected."""

from __future__ import annotations

import ast
import ipaddress
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

from dlrhub.event import EventType, Status
from dlrhub.settings_schema import (
    AtLeast,
    AtMost,
    Duration,
    Flatten,
    HttpUrl,
    IpNetwork,
    Matches,
    Name,
    NamedTables,
    NonNegativeInt,
    Number,
    OneOf,
    Port,
    PositiveDuration,
    PositiveInt,
    Required,
    Secret,
    TimeZoneName,
    named_tables,
    parse_section,
    section_keys,
)
from dlrhub.settings_values import ConfigError, ConfigErrors, EnvText

ROOT = Path(__file__).resolve().parents[1]
NETWORK = ipaddress.ip_network("10.0.0.0/8")


@dataclass(frozen=True, slots=True)
class Limits:
    low: int = 1
    high: int = 10

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.high < self.low:
            yield "high", "must not be less than low"


@dataclass(frozen=True, slots=True)
class Item:
    name: Name
    size: int = 0


@dataclass(frozen=True, slots=True)
class Extra:
    note: str = ""
    items: Annotated[tuple[Item, ...], NamedTables("item", read_item)] = ()


def read_item(path: str, value: Any) -> Item:
    return parse_section(Item, value, path)


@dataclass(frozen=True, slots=True)
class Everything:
    token: Secret = "abcdefghijklmnop0123"
    timeout: Duration = 1.0
    lease: PositiveDuration = 1.0
    port: Port = 80
    count: PositiveInt = 1
    retries: NonNegativeInt = 0
    factor: Number = 1.0
    network: IpNetwork = NETWORK
    zone: TimeZoneName = "UTC"
    url: HttpUrl = "https://example.com"
    name: Name = "a"
    text: str = ""
    whole: int = 0
    ratio: float = 0.0
    flag: bool = False
    file: Path = Path("x")
    maybe: str | None = "set"
    mode: Literal["push", "pull"] = "push"
    status: Status = Status.SENT
    types: frozenset[EventType] = frozenset()
    ports: tuple[Port, ...] = ()
    labels: Mapping[str, int] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    provider: Annotated[str, OneOf({"360nrs": "nrs360", "onurix": "onurix"}, "a provider")] = (
        "nrs360"
    )
    small: Annotated[int, AtMost(5)] = 0
    big: Annotated[float, AtLeast(1, "never shrinks")] = 1.0
    schema: Annotated[str, Matches(r"[a-z]+", "is not lower-case")] = "a"
    extra: Annotated[Extra, Flatten()] = field(default_factory=Extra)


@dataclass(frozen=True, slots=True)
class Needs:
    plain: str
    explained: Annotated[str, Required("is required: write one")]
    chosen: Annotated[str, OneOf({"a": "a", "b": "b"}, "a letter")]


def test_every_type_converts() -> None:
    section = parse_section(
        Everything,
        {
            "timeout": "500ms",
            "lease": "2m",
            "network": "192.0.2.1",
            "url": "https://dlr.example.com/",
            "file": "~/dlrhub",
            "maybe": "",
            "mode": "PULL",
            "status": "Delivered",
            "types": ["message.status"],
            "ports": EnvText("80, 443", "DLRHUB_PORTS"),
            "labels": {"a": 1},
            "limits": {"high": 3},
            "provider": "360NRS",
            "note": "flattened",
            "items": [{"name": "one"}, {"name": "two", "size": 2}],
            "flag": EnvText("yes", "DLRHUB_FLAG"),
        },
    )
    assert (section.timeout, section.lease) == (0.5, 120.0)
    assert section.network == ipaddress.ip_network("192.0.2.1/32")
    assert section.url == "https://dlr.example.com"
    assert section.file == Path("~/dlrhub").expanduser()
    assert section.maybe is None and section.mode == "pull"
    assert section.status is Status.DELIVERED and section.types == {EventType.MESSAGE_STATUS}
    assert section.ports == (80, 443) and section.labels == {"a": 1}
    assert section.limits == Limits(low=1, high=3) and section.provider == "nrs360"
    assert section.extra.note == "flattened" and section.flag is True
    assert [item.name for item in section.extra.items] == ["one", "two"]
    assert "note" in section_keys(Everything) and "extra" not in section_keys(Everything)
    assert named_tables(Everything) == {"items"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "token",
            "short",
            "token: must be 16 or more URL-safe characters (letters, digits, '.', '_', '~', '-')",
        ),
        ("timeout", "soon", "timeout: must be a duration (e.g. 30s, 5m, 1h), not 'soon'"),
        ("timeout", -1, "timeout: must be a finite duration of 0 or more, not -1"),
        ("lease", "0s", "lease: must be longer than 0"),
        ("port", 70000, "port: must be a port number from 0 to 65535, not 70000"),
        ("port", "80", "port: must be a whole number, not '80'"),
        ("count", 0, "count: must be greater than 0, not 0"),
        ("retries", -1, "retries: must be 0 or more, not -1"),
        ("factor", -0.5, "factor: must be a finite number of 0 or more, not -0.5"),
        ("network", "10.0.0.300/8", "network: '10.0.0.300/8' is not an IP address or CIDR network"),
        ("zone", "Mars/Olympus", "zone: 'Mars/Olympus' is not a time zone name"),
        ("url", "ftp://example.com", "url: 'ftp://example.com' is not an http(s) URL"),
        ("name", "Shop", "name: 'Shop' must be lower-case letters, digits, '-' or '_'"),
        ("text", 1, "text: must be a string, not int"),
        ("whole", 1.5, "whole: must be a whole number, not 1.5"),
        ("ratio", "x", "ratio: must be a number, not 'x'"),
        ("flag", "yes", "flag: must be true or false, not 'yes'"),
        ("mode", "both", "mode: 'both' is not 'push' or 'pull'"),
        ("status", "gone", "status: 'gone' is not a status (unknown, accepted,"),
        ("types", ["nope"], "types[0]: 'nope' is not an event type (message.status,"),
        ("ports", [80, 70000], "ports[1]: must be a port number from 0 to 65535, not 70000"),
        ("ports", {"a": 1}, "ports: must be an array"),
        ("labels", {"a": "x"}, "labels.a: must be a whole number, not 'x'"),
        ("labels", 1, "labels: must be a table"),
        ("limits", {"low": 5, "high": 2}, "limits.high: must not be less than low"),
        ("limits", {"wide": 1}, "limits.wide: unknown key (expected one of high, low)"),
        ("provider", "twilio", "provider: 'twilio' is not a provider (360nrs, onurix)"),
        ("small", 6, "small: must be at most 5"),
        ("big", 0.5, "big: must be 1 or more (never shrinks)"),
        ("schema", "A", "schema: 'A' is not lower-case"),
        ("items", {"name": "a"}, "items: must be an array of tables ([[items]])"),
        ("items", [{"name": "a"}, {"name": "a"}], "items[1].name: 'a' is used by another item"),
        ("colour", 1, "colour: unknown key (expected one of big, count, factor, file,"),
    ],
)
def test_each_type_has_its_message(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_section(Everything, {key: value})
    assert str(raised.value).startswith(message)
    assert len(raised.value.errors) == 1


def test_a_missing_key_names_what_is_required() -> None:
    with pytest.raises(ConfigErrors) as raised:
        parse_section(Needs, {}, "sources[2]")
    assert str(raised.value).splitlines() == [
        "sources[2].plain: is required",
        "sources[2].explained: is required: write one",
        "sources[2].chosen: is required (one of a, b)",
    ]


def test_every_error_is_reported_in_document_order() -> None:
    document = {
        "zone": "Nowhere",
        "items": [{"name": "ok", "size": "big"}, {"name": "Bad", "colour": 1}],
        "limits": {"low": "x", "high": 0},
        "port": -1,
    }
    with pytest.raises(ConfigErrors) as raised:
        parse_section(Everything, document)
    assert [(error.path, error.problem) for error in raised.value.errors] == [
        ("zone", "'Nowhere' is not a time zone name"),
        ("items[0].size", "must be a whole number, not 'big'"),
        ("items[1].name", "'Bad' must be lower-case letters, digits, '-' or '_'"),
        ("items[1].colour", "unknown key (expected one of name, size)"),
        ("limits.low", "must be a whole number, not 'x'"),
        ("port", "must be a port number from 0 to 65535, not -1"),
    ]
    assert isinstance(raised.value, ConfigError)
    assert (raised.value.path, raised.value.problem) == (
        "zone",
        "'Nowhere' is not a time zone name",
    )


def test_a_value_from_an_environment_variable_names_it() -> None:
    document = {
        "port": EnvText("eighty", "DLRHUB_PORT"),
        "ports": EnvText("80,99999", "DLRHUB_PORTS"),
        "limits": {"low": EnvText("9", "DLRHUB_LIMITS__LOW"), "high": 2},
        "count": 0,
    }
    with pytest.raises(ConfigErrors) as raised:
        parse_section(Everything, document)
    assert str(raised.value).splitlines() == [
        "port: must be a whole number, not 'eighty' (from DLRHUB_PORT)",
        "ports[1]: must be a port number from 0 to 65535, not 99999 (from DLRHUB_PORTS)",
        "limits.high: must not be less than low",
        "count: must be greater than 0, not 0",
    ]
    assert raised.value.errors[0].variable == "DLRHUB_PORT"


def test_the_module_docstring_example_runs() -> None:
    module = ast.parse((ROOT / "dlrhub/settings_schema.py").read_text(encoding="utf-8"))
    docstring = ast.get_docstring(module) or ""
    example = docstring.split("::\n", 1)[1].split("\n\n`parse_section`", 1)[0]
    code = compile(textwrap.dedent(example), "<docstring>", "exec", dont_inherit=True)
    exec(code, {"__name__": "example"})  # noqa: S102 - our own docstring
