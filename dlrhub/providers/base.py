"""What a provider is: one object that the receiver, configuration, CLI, poller and
OpenAPI document ask, so that none of them names a provider.

A provider that pushes declares `routes` (served at `/hooks/{source}/{route.kind}`)
and how a callback proves where it comes from (`auth`); a provider dlrhub sends
through and polls declares an `AccountSpec`. Its `normalize` reads both: the
callbacks of its routes and the answers its client got (`RawCallback.kind` says
which). Adding a provider is one folder under `dlrhub/providers/` exporting a
`PROVIDER` and one line in `dlrhub/providers/__init__.py`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dlrhub.normalizers.base import Normalizer, SourceOptions

if TYPE_CHECKING:
    from dlrhub.outbound.account import AccountConfig
    from dlrhub.outbound.clients import ProviderClient
    from dlrhub.outbound.transport import Transport
    from dlrhub.testing.faults import FakeProvider

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Route:
    """One callback route, `/hooks/{source}/{kind}`; `kind` becomes `RawCallback.kind`.

    `body` says what a POST carries: a form, JSON, or nothing (a GET with a query).
    `ack` is the exact body (text/plain) a provider needs in a 200 before it stops
    retrying; by default dlrhub answers JSON (stored, duplicate, event ids).
    `lenient_content_type` (JSON bodies only) takes a POST whatever its
    Content-Type, or none, when its body parses as JSON: for a provider whose
    document never states the Content-Type it sends; a body that does not parse
    is still 415.
    """

    kind: str
    methods: tuple[str, ...]
    body: Literal["none", "form", "json"] = "none"
    summary: str = ""
    fields: tuple[str, ...] = ()  # documented parameter names, for the OpenAPI document
    ack: bytes | None = None
    lenient_content_type: bool = False

    def __post_init__(self) -> None:
        if self.lenient_content_type and self.body != "json":
            raise ValueError(f"route {self.kind!r}: lenient_content_type needs a JSON body")

    @property
    def content_type(self) -> str | None:
        """The Content-Type a POST must have, or None when the route takes no body."""
        return {"form": FORM, "json": JSON}.get(self.body)


@dataclass(frozen=True, slots=True)
class HookRequest:
    """What an authenticator sees of one callback.

    `url` is the URL as the provider called it: rebuilt from `server.public_url`
    when one is configured, never from the Host header.
    """

    method: str
    url: str
    query_string: bytes
    headers: Mapping[str, str]  # lower-case names; only those the authenticator asked for
    body: bytes


class Authenticator(Protocol):
    """Checks that a callback comes from the provider, given the source's secret."""

    @property
    def needs_body(self) -> bool:
        """Whether the check reads the body (then it runs after the body is read)."""
        ...

    @property
    def headers(self) -> tuple[str, ...]:
        """Lower-case names of the request headers the check reads."""
        ...

    @property
    def challenge(self) -> str | None:
        """The `WWW-Authenticate` value of a 401, or None to answer 403 instead."""
        ...

    @property
    def security(self) -> Mapping[str, Mapping[str, str]]:
        """OpenAPI security schemes by name: any one of them authenticates a callback."""
        ...

    @property
    def failure(self) -> str:
        """What a failed check means, for the OpenAPI document (401 or 403)."""
        ...

    def __call__(self, request: HookRequest, secret: str) -> bool: ...


CallbackUrls = Callable[[str, str, SourceOptions], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What a `[[sources]]` entry of this provider holds, and how its callbacks arrive.

    `secret_key` names the key holding the source's credential (`token`, or
    Twilio's `auth_token`). `dlr_params` are the default names of the receipt
    parameters the user builds into the URL (None: the provider fixes them and the
    source has no `dlr_params` key). `plus_as_space` is the default of the
    source's `dlr_plus_as_space` key (whether a `+` in the receipt query is a
    space), or None when the provider's format decides and there is no such key.
    `urls(hook, secret, options)` lists the (label, URL) pairs printed at start
    for the user to give the provider. `secret` is the token only on the start that
    generated it; otherwise a placeholder (`<see dlrhub-data/source-x.token>`) to put
    in the URL as it is, unquoted.
    """

    routes: tuple[Route, ...]
    auth: Authenticator
    urls: CallbackUrls
    secret_key: str = "token"  # noqa: S105 (the name of a key, not a secret)
    dlr_params: Mapping[str, str] | None = None
    plus_as_space: bool | None = None


class ClientFactory(Protocol):
    def __call__(self, account: AccountConfig, transport: Transport) -> ProviderClient: ...


AccountCheck = Callable[[Mapping[str, str]], list[tuple[str, str]]]
NotificationUrl = Callable[[str, str, SourceOptions, str], str]


def _no_problems(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What an `[[accounts]]` entry of this provider holds, and what its client can do.

    `keys` are the provider's own keys, `secret_keys` those among them that are
    credentials (never logged or stored), `required` alternatives of which one
    must be given, `durations` keys read as durations. `check(settings)` yields
    (key, problem) for rules across keys. `notification_url(hook, token, options,
    ref)`, when set, is the URL a send asks the provider to call for its receipt
    (the account's `source` key names the dlrhub source).
    """

    client: ClientFactory
    base_url: str
    keys: frozenset[str]
    required: tuple[tuple[str, ...], ...] = ()
    secret_keys: frozenset[str] = frozenset()
    durations: frozenset[str] = frozenset()
    check: AccountCheck = _no_problems
    pollable: bool = False
    group_size: int = 1
    stop_statuses: tuple[str, ...] = ()
    channels: frozenset[str] = frozenset({"sms"})
    distinct_texts: bool = False  # one send may carry a different text per recipient
    notification_url: NotificationUrl | None = None


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider, whole. `name` is its code name; users may write any of `aliases`.

    `fake` is the dotted path (`module:Class`) of its fake server, imported only
    by tests and demos. `docs` is its page under `docs/`.
    """

    name: str
    title: str
    normalize: Normalizer
    docs: str
    aliases: tuple[str, ...] = ()
    source: SourceSpec | None = None
    account: AccountSpec | None = None
    fake: str | None = None
    backfill: str | None = None  # `module:function` filling gaps from the provider's reports
    status_table: str = ""  # where the status mapping is written down
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", (self.name, *self.aliases))

    def fake_class(self) -> type[FakeProvider]:
        """The fake server's class (imports it: test and demo code only)."""
        if self.fake is None:
            raise LookupError(f"provider {self.name!r} has no fake server")
        fake: type[FakeProvider] = load(self.fake)
        return fake

    def route(self, kind: str) -> Route | None:
        if self.source is None:
            return None
        return next((route for route in self.source.routes if route.kind == kind), None)


def load(path: str) -> Any:
    """The object at `module:attribute`."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
