"""Configuration sections declared once, as frozen dataclasses, and read from their type hints.

A section is a dataclass whose fields are its keys: the annotation says how a
value is converted and checked, the default says what a missing key means (no
default: the key is required), and an optional `problems()` method yields the
rules that involve several keys (it runs once every key was read without
error). Declare sections at module level: their hints are resolved in their
module's namespace (name a module's function in a marker directly: a lambda
there would not see the module's names). For example::

    from collections.abc import Iterator
    from dataclasses import dataclass, field
    from typing import Annotated, Literal

    from dlrhub.settings_schema import AtMost, Duration, Port, Secret, parse_section


    @dataclass(frozen=True, slots=True)
    class DlrParams:
        status: str = "status"
        ref: str = "ref"


    @dataclass(frozen=True, slots=True)
    class ExampleSource:
        token: Secret  # required: 16+ URL-safe characters
        port: Port = 8080
        timeout: Duration = 10.0  # 10, "500ms", "30s", "5m" ...
        batch: Annotated[int, AtMost(500)] = 50
        mode: Literal["push", "pull"] = "push"  # case-insensitive
        dlr_params: DlrParams = field(default_factory=DlrParams)  # a nested table
        allow: tuple[str, ...] = ()  # a TOML array, or "a,b" from a variable

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.mode == "pull" and self.batch > 100:
                yield "batch", "must be at most 100 with mode 'pull'"


    table = {"token": "abcdefghijklmnop0123", "timeout": "5m", "dlr_params": {"ref": "id"}}
    source = parse_section(ExampleSource, table, "sources[0]")  # raises ConfigErrors
    assert (source.timeout, source.dlr_params.ref) == (300.0, "id")

`parse_section` raises one `ConfigErrors` holding every problem, each
`path: problem` (`sources[0].port: must be a port number from 0 to 65535, not
70000`), in the order of the document; an error on a value that came from an
environment variable names it (`... (from DLRHUB_SOURCES__SHOP__PORT)`). To
read a table in parts (a kind or provider that decides the other keys, as
`dlrhub/sinks/settings.py` does), use `read_key` and `read_section(cls, path,
value, errors, other_keys=...)`: they append to `errors` and return None if
anything was wrong.

| annotation                            | accepts                                         |
|---------------------------------------|-------------------------------------------------|
| `str`, `int`, `float`, `bool`, `Path` | a TOML value of that type, or a variable's text |
| X or None (`Optional[X]`)             | as X; `""` (an emptied variable) means None     |
| `tuple[X, ...]`, `frozenset[X]`       | an array, one value alone, or `a,b` text        |
| `Mapping[str, X]`                     | a table of X                                    |
| a dataclass                           | a nested table, read by these same rules        |
| `Literal["a", "b"]`                   | one of the texts, case-insensitive              |
| an `Enum` (`Status`)                  | one of its values                               |
| `Annotated[X, marker, ...]`           | X, converted and checked by the markers         |

Ready-made: `Secret`, `Duration`, `PositiveDuration`, `Port`, `PositiveInt`,
`NonNegativeInt`, `Number` (0 or more), `IpNetwork`, `TimeZoneName`, `HttpUrl`
(a base URL, its trailing `/` removed), `Name` (of a `[[table]]`). Markers:
`Convert(function)`, `OneOf(choices, what)` and `NamedTables(what, parse)` (an
array of tables with unique names) replace the conversion by type; `Check`,
`AtLeast`, `AtMost` and `Matches` check the converted value, in order;
`Required(problem)` is the error for a missing key; `Flatten()` marks a section
whose keys sit in the enclosing table (`Config.outbound`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from dlrhub.settings_values import (
    NAME,
    ConfigError,
    ConfigErrors,
    EnvText,
    Network,
    flatten_errors,
    read_bool,
    read_duration,
    read_float,
    read_int,
    read_list,
    read_network,
    read_nonnegative_int,
    read_number,
    read_path,
    read_port,
    read_positive_int,
    read_secret,
    read_table,
    read_tables,
    read_text,
)

T = TypeVar("T")
_INVALID: Any = object()  # what a reader returns after it recorded an error


# Markers --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Convert:
    """Convert the raw value with `function(path, raw)`, which raises `ConfigError`."""

    function: Callable[[str, Any], Any]

    def convert(self, path: str, raw: Any) -> Any:
        return self.function(path, raw)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """After conversion, `function(value)` returns a problem, or None if the value is right."""

    function: Callable[[Any], str | None]

    def problem(self, value: Any) -> str | None:
        return self.function(value)


@dataclasses.dataclass(frozen=True, slots=True)
class AtLeast:
    minimum: float
    why: str = ""

    def problem(self, value: float) -> str | None:
        if value >= self.minimum:
            return None
        return f"must be {self.minimum:g} or more" + (f" ({self.why})" if self.why else "")


@dataclasses.dataclass(frozen=True, slots=True)
class AtMost:
    maximum: float

    def problem(self, value: float) -> str | None:
        return None if value <= self.maximum else f"must be at most {self.maximum:g}"


@dataclasses.dataclass(frozen=True, slots=True)
class Matches:
    """The text matches `pattern` in full; else `'<text>' <problem>`."""

    pattern: str
    problem_text: str

    def problem(self, value: str) -> str | None:
        return None if re.fullmatch(self.pattern, value) else f"{value!r} {self.problem_text}"


@dataclasses.dataclass(frozen=True, slots=True)
class OneOf:
    """Text that names one of `choices` (case-insensitive), read as the value it maps to.

    `choices` may be a function returning them, for a registry filled after import.
    """

    choices: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    what: str  # "a sink kind": `'kafka' is not a sink kind (jsonl, nats, ...)`

    def names(self) -> str:
        return ", ".join(sorted(self.mapping()))

    def mapping(self) -> Mapping[str, Any]:
        return self.choices if isinstance(self.choices, Mapping) else self.choices()

    def convert(self, path: str, value: Any) -> Any:
        text = read_text(path, value)
        choice = self.mapping().get(text.lower(), _INVALID)
        if choice is _INVALID:
            raise ConfigError(path, f"{text!r} is not {self.what} ({self.names()})")
        return choice

    @property
    def when_missing(self) -> str:
        return f"is required (one of {self.names()})"


@dataclasses.dataclass(frozen=True, slots=True)
class Required:
    """The problem reported when the key is missing (default: `is required`)."""

    when_missing: str


@dataclasses.dataclass(frozen=True, slots=True)
class Flatten:
    """The field is a section whose keys are written in the enclosing table."""


@dataclasses.dataclass(frozen=True, slots=True)
class NamedTables:
    """An array of tables (`[[sinks]]`), each read by `parse(path, item)`, names unique.

    Environment variables address its tables by name (`DLRHUB_SINKS__<NAME>__<KEY>`).
    """

    what: str  # "sink": `sinks[1].name: 'a' is used by another sink`
    parse: Callable[[str, Any], Any]

    def convert(self, path: str, value: Any) -> Any:
        return read_tables(path, value, self.what, self.parse)


def _time_zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone name"
    return None


def read_http_url(path: str, value: Any) -> str:
    """An http(s) base URL, returned without its trailing `/`."""
    text = read_text(path, value)
    if not re.match(r"^https?://[^/?#\s]+", text):
        raise ConfigError(path, f"{text!r} is not an http(s) URL")
    return text.rstrip("/")


Secret = Annotated[str, Convert(read_secret)]
Duration = Annotated[float, Convert(read_duration)]
PositiveDuration = Annotated[
    float, Convert(read_duration), Check(lambda s: None if s > 0 else "must be longer than 0")
]
Port = Annotated[int, Convert(read_port)]
PositiveInt = Annotated[int, Convert(read_positive_int)]
NonNegativeInt = Annotated[int, Convert(read_nonnegative_int)]
Number = Annotated[float, Convert(read_number)]  # finite, 0 or more
IpNetwork = Annotated[Network, Convert(read_network)]
TimeZoneName = Annotated[str, Check(_time_zone_problem)]
HttpUrl = Annotated[str, Convert(read_http_url)]
Name = Annotated[str, Matches(NAME.pattern, "must be lower-case letters, digits, '-' or '_'")]


# Reading ----------------------------------------------------------------------


def parse_section(cls: type[T], value: Any, path: str = "") -> T:
    """`value` read as `cls`; raises one `ConfigErrors` with every problem, in document order."""
    errors: list[ConfigError] = []
    section = read_section(cls, path, value, errors)
    if errors or section is None:
        raise ConfigErrors(in_document_order(errors, value, path))
    return section


def read_section(
    cls: type[T],
    path: str,
    value: Any,
    errors: list[ConfigError],
    *,
    given: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    other_keys: Collection[str] = (),
) -> T | None:
    """The table `value` at `path` read as `cls`; every problem is appended to `errors`.

    Returns None if anything was wrong. `given` holds fields not read from the
    table; `defaults` replaces declared defaults; `other_keys` are keys of the
    table that another reader reads (they are not reported as unknown).
    """
    try:
        table = read_table(path, value)
    except ConfigError as error:
        errors.append(error)
        return None
    given = given or {}
    defaults = defaults or {}
    fields = _fields(cls)
    own = {key for field in fields if field.name not in given for key in field.keys}
    allowed = own | set(other_keys)
    found = len(errors)
    for key in table:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            errors.append(
                ConfigError(_join(path, key), f"unknown key (expected one of {expected})")
            )
    values: dict[str, Any] = {}
    for field in fields:
        if field.name in given:
            values[field.name] = given[field.name]
        elif field.flatten:
            inner = {key: table[key] for key in field.keys if key in table}
            part = read_section(field.hint, path, inner, errors)
            values[field.name] = _INVALID if part is None else part
        elif field.name in table:
            values[field.name] = read_value(
                field.hint, _join(path, field.name), table[field.name], errors
            )
        elif field.name in defaults:
            values[field.name] = defaults[field.name]
        elif field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            values[field.name] = field.default_factory()
        else:
            errors.append(ConfigError(_join(path, field.name), field.when_missing))
            values[field.name] = _INVALID
    if any(value is _INVALID for value in values.values()):
        return None
    section = cls(**values)
    problems: Callable[[], Iterable[tuple[str, str]]] | None = getattr(section, "problems", None)
    for key, problem in problems() if problems is not None else ():
        errors.append(ConfigError(_join(path, key), problem))
    return section if len(errors) == found else None


def read_key(
    cls: type, key: str, path: str, table: Mapping[str, Any], errors: list[ConfigError]
) -> Any:
    """One field of `cls` read from `table` (e.g. the `kind` that decides the other keys).

    Returns None if it is missing and required, or wrong; the problem is in `errors`.
    """
    (field,) = (field for field in _fields(cls) if field.name == key)
    if key in table:
        value = read_value(field.hint, _join(path, key), table[key], errors)
        return None if value is _INVALID else value
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    errors.append(ConfigError(_join(path, key), field.when_missing))
    return None


def read_variant(
    common: type[T], key: str, variants: Mapping[Any, type], path: str, value: Any
) -> tuple[T, Any]:
    """A table whose `key` (a field of `common`) picks which other keys it may hold.

    Returns (the common section, the variant's section); raises `ConfigErrors` with
    every problem of the table. A provider's sources and accounts are read so.
    """
    errors: list[ConfigError] = []
    table = read_table(path, value)
    choice = read_key(common, key, path, table, errors)
    variant = variants.get(choice) if choice is not None else None
    if variant is None:  # no variant, no list of its keys: check those every table has
        read_section(common, path, table, errors, other_keys=table)
        raise ConfigErrors(errors)
    own_keys = section_keys(variant)
    own = read_section(variant, path, {k: v for k, v in table.items() if k in own_keys}, errors)
    section = read_section(common, path, table, errors, other_keys=own_keys)
    if own is None or section is None or errors:
        raise ConfigErrors(errors)
    return section, own


def section_keys(cls: type) -> frozenset[str]:
    """The keys a table read as `cls` may hold."""
    return frozenset(key for field in _fields(cls) for key in field.keys)


def named_tables(cls: type) -> frozenset[str]:
    """The keys of `cls` (and of its flattened sections) that are arrays of named tables."""
    keys: set[str] = set()
    for field in _fields(cls):
        if field.flatten:
            keys |= named_tables(field.hint)
        elif any(isinstance(marker, NamedTables) for marker in _markers(field.hint)):
            keys.add(field.name)
    return frozenset(keys)


def read_value(hint: Any, path: str, raw: Any, errors: list[ConfigError]) -> Any:
    """`raw` converted to `hint`; a problem is appended to `errors` and `_INVALID` returned."""
    try:
        return _convert(hint, path, raw, errors)
    except ConfigError as error:
        errors.extend(flatten_errors([error]))
        return _INVALID


def _convert(hint: Any, path: str, raw: Any, errors: list[ConfigError]) -> Any:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *markers = get_args(hint)
        # A marker with `convert(path, raw)` replaces the conversion by type; markers
        # with `problem(value)` check the converted value, in the order written.
        converter = next((marker for marker in markers if hasattr(marker, "convert")), None)
        value = converter.convert(path, raw) if converter else _convert(base, path, raw, errors)
        if value is _INVALID:
            return _INVALID
        for marker in markers:
            problem = marker.problem(value) if hasattr(marker, "problem") else None
            if problem is not None:
                raise ConfigError(path, problem)
        return value
    if origin in (Union, types.UnionType):
        options = [option for option in get_args(hint) if option is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{path}: only `X | None` unions can be read, not {hint}")
        return None if raw == "" else _convert(options[0], path, raw, errors)
    if origin is Literal:
        return _literal(get_args(hint), path, raw)
    if origin in (tuple, frozenset, set, list):
        item_hint = get_args(hint)[0]
        if origin is tuple and get_args(hint)[1:] != (...,):
            raise TypeError(f"{path}: only `tuple[X, ...]` can be read, not {hint}")
        items = [raw] if isinstance(raw, str) and not isinstance(raw, EnvText) else raw
        converted = [
            read_value(item_hint, f"{path}[{index}]", item, errors)
            for index, item in enumerate(read_list(path, items))
        ]
        return _INVALID if any(item is _INVALID for item in converted) else origin(converted)
    if origin in (dict, Mapping):
        key_hint, value_hint = get_args(hint)
        if key_hint is not str:
            raise TypeError(f"{path}: only tables with text keys can be read, not {hint}")
        table = {
            str(key): read_value(value_hint, f"{path}.{key}", item, errors)
            for key, item in read_table(path, raw).items()
        }
        return _INVALID if any(item is _INVALID for item in table.values()) else table
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        section = read_section(hint, path, raw, errors)
        return _INVALID if section is None else section
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint, path, raw)
    reader = _SCALARS.get(hint)
    if reader is None:
        raise TypeError(f"{path}: no reader for {hint!r}; add a Convert marker")
    return reader(path, raw)


_SCALARS: Mapping[Any, Callable[[str, Any], Any]] = {
    str: read_text,
    int: read_int,
    float: read_float,
    bool: read_bool,
    Path: read_path,
}


def _literal(choices: tuple[Any, ...], path: str, raw: Any) -> Any:
    text = read_text(path, raw)
    for choice in choices:
        if text.lower() == str(choice).lower():
            return choice
    quoted = [repr(choice) for choice in choices]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    raise ConfigError(path, f"{text!r} is not {listed}")


def _enum(cls: type[enum.Enum], path: str, raw: Any) -> enum.Enum:
    text = read_text(path, raw)
    for candidate in (text, text.lower()):
        try:
            return cls(candidate)
        except ValueError:
            pass
    # `Status` -> "a status", `EventType` -> "an event type"
    noun = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()
    article = "an" if noun[0] in "aeiou" else "a"
    known = ", ".join(str(member.value) for member in cls)
    raise ConfigError(path, f"{text!r} is not {article} {noun} ({known})")


# Fields of a section ----------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    hint: Any  # for a flattened field, the section's class
    default: Any
    default_factory: Any
    flatten: bool
    keys: tuple[str, ...]  # table keys it reads: its name, or the flattened section's keys
    when_missing: str


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    if cls not in _FIELDS:
        _FIELDS[cls] = _read_fields(cls)
    return _FIELDS[cls]


def _read_fields(cls: type) -> tuple[_Field, ...]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        markers = _markers(hint)
        flatten = any(isinstance(marker, Flatten) for marker in markers)
        if flatten:
            hint = get_args(hint)[0]
        missing = next(
            (marker.when_missing for marker in markers if isinstance(marker, Required | OneOf)),
            "is required",
        )
        fields.append(
            _Field(
                name=field.name,
                hint=hint,
                default=field.default,
                default_factory=field.default_factory,
                flatten=flatten,
                keys=tuple(sorted(section_keys(hint))) if flatten else (field.name,),
                when_missing=missing,
            )
        )
    return tuple(fields)


def _markers(hint: Any) -> tuple[Any, ...]:
    return tuple(get_args(hint)[1:]) if get_origin(hint) is Annotated else ()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# Errors in the order of the document --------------------------------------------

_SEGMENT = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")


def in_document_order(
    errors: Iterable[ConfigError], document: Any, root: str = ""
) -> list[ConfigError]:
    """`errors` sorted as their keys appear in `document` (whose path is `root`).

    An error on a value that came from an environment variable gets the
    variable's name. A missing key sorts after the keys its table has.
    """
    placed = []
    for error in flatten_errors(errors):
        position, variable = _locate(document, error.path, root)
        if variable and not error.variable:
            error = ConfigError(error.path, error.problem, variable)
        placed.append((position, error))
    placed.sort(key=lambda pair: pair[0])
    return [error for _, error in placed]


def _locate(document: Any, path: str, root: str) -> tuple[tuple[int, ...], str | None]:
    if root and not path.startswith(root):
        return (), None
    position: list[int] = []
    value = document
    for match in _SEGMENT.finditer(path[len(root) :]):
        if isinstance(value, EnvText):
            break
        index, key = match.groups()
        if key is not None and isinstance(value, dict):
            keys = list(value)
            if key not in value:
                position.append(len(keys))
                return tuple(position), None
            position.append(keys.index(key))
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            position.append(int(index))
            value = value[int(index)]
        else:
            break
    if isinstance(value, EnvText):
        return tuple(position), value.variable
    leaves = list(_leaves(value))  # a table that variables made, e.g. `DLRHUB_SERVER__A__B`
    if leaves and all(isinstance(leaf, EnvText) for leaf in leaves):
        return tuple(position), ", ".join(sorted({leaf.variable for leaf in leaves}))
    return tuple(position), None


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value
