"""Typed reading of configuration values, shared by every configuration section.

Each converter takes the key's path (for the error message) and the raw value
from TOML or from an environment variable (`EnvText`, converted by type), and
raises `ConfigError` at the first problem. `dlrhub/settings_schema.py` applies
them field by field and collects every error into one `ConfigErrors`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration value is wrong; `str()` names the key, the problem and the variable.

    `variable` is the environment variable the value came from, if it did.
    """

    def __init__(self, path: str, problem: str, variable: str | None = None) -> None:
        where = f" (from {variable})" if variable else ""
        super().__init__(f"{path}: {problem}{where}" if path else f"{problem}{where}")
        self.path = path
        self.problem = problem
        self.variable = variable


class ConfigErrors(ConfigError):
    """Every problem found in a configuration: `str()` is one `path: problem` line each.

    `path`, `problem` and `variable` are the first error's, for code that expects one.
    """

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = tuple(flatten_errors(errors))
        if not self.errors:
            raise ValueError("ConfigErrors needs at least one error")
        first = self.errors[0]
        super().__init__(first.path, first.problem, first.variable)
        self.args = ("\n".join(str(error) for error in self.errors),)


def flatten_errors(errors: Iterable[ConfigError]) -> list[ConfigError]:
    """The single errors in `errors`, with each `ConfigErrors` replaced by the errors it holds."""
    flat: list[ConfigError] = []
    for error in errors:
        flat.extend(error.errors if isinstance(error, ConfigErrors) else (error,))
    return flat


class EnvText(str):
    """A value from an environment variable: text to convert by the key's type.

    `variable` names the variable, for error messages (`... (from DLRHUB_SERVER__PORT)`).
    """

    variable: str

    def __new__(cls, value: str, variable: str = "") -> EnvText:
        text = super().__new__(cls, value)
        text.variable = variable
        return text


def reject_unknown(path: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def value_at(
    table: Mapping[str, Any], key: str, path: str, convert: Callable[[str, Any], T], default: T
) -> T:
    return convert(path, table[key]) if key in table else default


def read_table(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(path, "must be a table")
    return value


def read_text(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, not {type(value).__name__}")
    return value


# The token values of the shipped examples (deploy/dlrhub.toml.example, README.md,
# docs/): a configuration still holding one was copied, not filled in.
# tests/test_docs.py checks that every token-looking value shipped is listed here.
PLACEHOLDER_SECRETS = frozenset(
    {
        "replace-with-a-long-random-token",
        "a-long-random-url-safe-token",
        "your-account-auth-token",
    }
)
SECRET_MIN_LENGTH = 16
SECRET_MIN_DISTINCT = 8
HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def secret_problem(text: str) -> str | None:
    """Why `text` cannot be a token (source, admin, viewer), or None; never quotes it.

    A token is 16 or more URL-safe characters, at least 8 of them different (so
    `aaaaaaaaaaaaaaaa` or `1212121212121212` are refused), and not a placeholder
    of the shipped examples.
    """
    if len(text) < SECRET_MIN_LENGTH or not re.fullmatch(r"[A-Za-z0-9._~-]+", text):
        return (
            f"must be {SECRET_MIN_LENGTH} or more URL-safe characters"
            " (letters, digits, '.', '_', '~', '-')"
        )
    if len(set(text)) < SECRET_MIN_DISTINCT:
        return (
            f"must have {SECRET_MIN_DISTINCT} or more different characters;"
            f" make a random one: {HOW_TO_MAKE_ONE}"
        )
    if text.lower() in PLACEHOLDER_SECRETS:
        return f"is the example's placeholder; replace it with a random one: {HOW_TO_MAKE_ONE}"
    return None


def read_secret(path: str, value: Any) -> str:
    text = read_text(path, value)
    problem = secret_problem(text)
    if problem is not None:
        raise ConfigError(path, problem)
    return text


def read_path(path: str, value: Any) -> Path:
    return Path(read_text(path, value)).expanduser()


def read_bool(path: str, value: Any) -> bool:
    if isinstance(value, EnvText):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
    if isinstance(value, bool):
        return value
    raise ConfigError(path, f"must be true or false, not {value!r}")


def read_int(path: str, value: Any) -> int:
    if isinstance(value, EnvText):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(path, f"must be a whole number, not {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(path, f"must be a whole number, not {value!r}")


def read_positive_int(path: str, value: Any) -> int:
    number = read_int(path, value)
    if number <= 0:
        raise ConfigError(path, f"must be greater than 0, not {number}")
    return number


def read_port(path: str, value: Any) -> int:
    number = read_int(path, value)
    if not 0 <= number <= 65535:
        raise ConfigError(path, f"must be a port number from 0 to 65535, not {number}")
    return number


def read_list(path: str, value: Any) -> list[Any]:
    if isinstance(value, EnvText):
        parts = (part.strip() for part in value.split(","))
        return [EnvText(part, value.variable) for part in parts if part]
    if not isinstance(value, list):
        raise ConfigError(path, "must be an array")
    return value


def read_network(path: str, value: Any) -> Network:
    text = read_text(path, value)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(path, f"{text!r} is not an IP address or CIDR network") from None


NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def read_name(path: str, table: Mapping[str, Any]) -> str:
    """The required `name` of a `[[section]]` table: it appears in URLs and env names."""
    name = value_at(table, "name", f"{path}.name", read_text, None)
    if name is None:
        raise ConfigError(f"{path}.name", "is required")
    if not NAME.match(name):
        raise ConfigError(
            f"{path}.name", f"{name!r} must be lower-case letters, digits, '-' or '_'"
        )
    return name


def read_choice(
    path: str, table: Mapping[str, Any], key: str, choices: Mapping[str, T], what: str
) -> T:
    """The required `key`, one of `choices` (case-insensitive); `what` names them in errors."""
    given = value_at(table, key, f"{path}.{key}", read_text, None)
    names = ", ".join(sorted(choices))
    if given is None:
        raise ConfigError(f"{path}.{key}", f"is required (one of {names})")
    choice = choices.get(given.lower())
    if choice is None:
        raise ConfigError(f"{path}.{key}", f"{given!r} is not {what} ({names})")
    return choice


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def read_named_tables(
    document: Mapping[str, Any], section: str, what: str, parse: Callable[[str, Any], N]
) -> tuple[N, ...]:
    """Every table of `[[section]]`, parsed, with names unique among them.

    `parse(path, item)` raises `ConfigError` (or `ConfigErrors`); the errors of
    every table are collected and raised together as one `ConfigErrors`.
    """
    return read_tables(section, document.get(section, []), what, parse)


def read_tables(path: str, value: Any, what: str, parse: Callable[[str, Any], N]) -> tuple[N, ...]:
    """`read_named_tables` for the array of tables `value` found at `path`."""
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array of tables ([[{path}]])")
    errors: list[ConfigError] = []
    parsed: list[N] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        name: object = item.get("name") if isinstance(item, dict) else None
        try:
            parsed.append(parse(f"{path}[{index}]", item))
            name = parsed[-1].name
        except ConfigError as error:
            errors.append(error)
        if isinstance(name, str) and name in seen:
            errors.append(
                ConfigError(f"{path}[{index}].name", f"{name!r} is used by another {what}")
            )
        if isinstance(name, str):
            seen.add(name)
    if errors:
        raise ConfigErrors(errors)
    return tuple(parsed)


def read_duration(path: str, value: Any) -> float:
    """Seconds, from a number or from text such as `50ms`, `30s`, `5m`, `1h`, `3d`."""
    if isinstance(value, bool):
        raise ConfigError(path, f"must be a duration (e.g. 30s, 5m, 1h), not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        found = DURATION.match(value)
        if found is None:
            raise ConfigError(path, f"must be a duration (e.g. 30s, 5m, 1h), not {value!r}")
        seconds = float(found.group(1)) * DURATION_UNITS[found.group(2)]
    else:
        raise ConfigError(path, f"must be a duration (e.g. 30s, 5m, 1h), not {value!r}")
    if not 0 <= seconds < float("inf"):
        raise ConfigError(path, f"must be a finite duration of 0 or more, not {value!r}")
    return seconds


def read_float(path: str, value: Any) -> float:
    """Any number (a TOML integer or float, or a variable's text)."""
    if isinstance(value, EnvText):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(path, f"must be a number, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be a number, not {value!r}")
    return float(value)


def read_number(path: str, value: Any) -> float:
    """A finite number of 0 or more (no dlrhub setting is negative)."""
    value = read_float(path, value)
    if not 0 <= value < float("inf"):
        raise ConfigError(path, f"must be a finite number of 0 or more, not {value!r}")
    return float(value)


def read_nonnegative_int(path: str, value: Any) -> int:
    number = read_int(path, value)
    if number < 0:
        raise ConfigError(path, f"must be 0 or more, not {number}")
    return number
