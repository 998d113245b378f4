"""A webhook sink reaches public addresses only, unless `allow_private = true`.

Checked twice: the URL's host when the configuration is read (every way of
writing an address), and every address the host resolves to at delivery, where
the connection goes to the address that was checked (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpcore
import pytest

from dlrhub.config import ConfigError
from dlrhub.sinks.webhook import AddressRefused, CheckedNetwork
from tests.processes import run_dlrhub
from tests.sinks.conftest import SECRET, Receiver, harness, ingest, make_events, sink_config
from tests.waiting import eventually_async


def webhook(url: str, extra: str = "") -> str:
    return (
        f'[[sinks]]\nname = "hook"\nkind = "webhook"\nurl = "{url}"\nsecret = "{SECRET}"\n{extra}'
    )


REFUSED = [
    # (url, the address it names, what kind of address that is)
    ("http://127.0.0.1:9000/dlr", "127.0.0.1", "a loopback"),
    ("http://127.8.9.10/", "127.8.9.10", "a loopback"),
    ("http://2130706433/", "127.0.0.1", "a loopback"),  # decimal
    ("http://0x7f.1/", "127.0.0.1", "a loopback"),  # hex, short form
    ("http://017700000001/", "127.0.0.1", "a loopback"),  # octal
    ("http://127.1/", "127.0.0.1", "a loopback"),
    ("http://[::1]:8080/", "::1", "a loopback"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "a loopback"),  # IPv4-mapped
    ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1", "a loopback"),
    ("http://[::127.0.0.1]/", "::127.0.0.1", "a loopback"),  # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1", "a loopback"),  # NAT64
    ("http://[2002:7f00:1::1]/", "2002:7f00:1::1", "a loopback"),  # 6to4
    ("http://0.0.0.0/", "0.0.0.0", "an unspecified"),
    ("http://[::]/", "::", "an unspecified"),
    ("http://169.254.1.1/", "169.254.1.1", "a link-local"),
    ("http://[fe80::1]/", "fe80::1", "a link-local"),
    ("http://10.1.2.3/", "10.1.2.3", "a private"),
    ("http://172.16.0.1/", "172.16.0.1", "a private"),
    ("http://192.168.1.1/", "192.168.1.1", "a private"),
    ("http://[::ffff:192.168.1.1]/", "::ffff:192.168.1.1", "a private"),
    ("http://[fd12:3456::1]/", "fd12:3456::1", "a private"),
    ("http://100.64.0.1/", "100.64.0.1", "a non-public"),  # shared address space (CGNAT)
    ("http://192.0.2.10/", "192.0.2.10", "a non-public"),  # documentation
    ("http://224.0.0.1/", "224.0.0.1", "a multicast"),
]
LOOPBACK_NAMES = [
    ("http://localhost:8080/", "localhost"),
    ("http://LocalHost./", "localhost"),
    ("http://hooks.localhost/", "hooks.localhost"),
]
METADATA = [
    ("http://169.254.169.254/latest/meta-data/", "points at 169.254.169.254"),
    ("http://[fd00:ec2::254]/", "points at fd00:ec2::254"),
    ("http://[::ffff:169.254.169.254]/", "points at ::ffff:"),
    ("http://2852039166/", "points at 169.254.169.254"),
    ("http://100.100.100.200/", "points at 100.100.100.200"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal"),
]
HINT = "set allow_private = true on this sink to allow it"


@pytest.mark.parametrize(("url", "address", "kind"), REFUSED)
def test_a_private_address_is_refused_unless_allowed(
    tmp_path: Path, url: str, address: str, kind: str
) -> None:
    with pytest.raises(ConfigError) as error:
        sink_config(tmp_path, webhook(url))
    named = ipaddress.ip_address(address)  # as this Python writes it
    assert str(error.value) == f"sinks[0].url: points at {named}, {kind} address; {HINT}"
    (sink,) = sink_config(tmp_path, webhook(url, "allow_private = true\n")).sinks
    assert sink.options.allow_private is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(("url", "name"), LOOPBACK_NAMES)
def test_a_localhost_name_is_refused_unless_allowed(tmp_path: Path, url: str, name: str) -> None:
    with pytest.raises(ConfigError) as error:
        sink_config(tmp_path, webhook(url))
    assert str(error.value) == f"sinks[0].url: {name} is a loopback name; {HINT}"
    sink_config(tmp_path, webhook(url, "allow_private = true\n"))


@pytest.mark.parametrize(("url", "said"), METADATA)
def test_a_metadata_address_is_refused_even_when_private_ones_are_allowed(
    tmp_path: Path, url: str, said: str
) -> None:
    for extra in ("", "allow_private = true\n"):
        with pytest.raises(ConfigError) as error:
            sink_config(tmp_path, webhook(url, extra))
        assert str(error.value).startswith(f"sinks[0].url: {said}")
        assert str(error.value).endswith("never allowed")


@pytest.mark.parametrize(
    "url",
    [
        "https://consumer.example/dlr",
        "https://93.184.216.34/dlr",
        "http://[2606:4700:4700::1111]/dlr",
        "https://localhost.example.com/dlr",  # a name, judged when it resolves
        "https://cafe.be/dlr",  # hex digits, but a name
    ],
)
def test_a_public_address_or_a_name_passes_the_configuration_check(
    tmp_path: Path, url: str
) -> None:
    (sink,) = sink_config(tmp_path, webhook(url)).sinks
    assert sink.options.allow_private is False  # type: ignore[attr-defined]


def test_the_refusal_leaves_the_urls_secrets_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        sink_config(tmp_path, webhook("http://user:url-password@10.0.0.1/x?token=query-secret"))
    assert "url-password" not in str(error.value)
    assert "query-secret" not in str(error.value)


async def test_check_config_refuses_a_loopback_webhook(tmp_path: Path) -> None:
    path = tmp_path / "dlrhub.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n' + webhook("http://127.0.0.1:9000/dlr"),
        encoding="utf-8",
    )
    result = await run_dlrhub("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"sinks[0].url: points at 127.0.0.1, a loopback address; {HINT}" in result.stderr
    path.write_text(path.read_text() + "allow_private = true\n", encoding="utf-8")
    result = await run_dlrhub("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# At delivery ----------------------------------------------------------------------


class Resolver:
    """Names the test makes resolve: `answers[name]` holds one answer per lookup (the
    last one repeats); other names resolve as usual. `lookups` records each lookup."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []
        self.real: Callable[..., Any] = socket.getaddrinfo

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, int(port), 0, 0) if ":" in address else (address, int(port)),
            )
            for address in addresses
        ]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)  # asyncio's getaddrinfo calls it
    yield fake


async def test_a_name_resolving_to_loopback_pauses_the_sink_and_sends_nothing(
    tmp_path: Path, receiver: Receiver, resolver: Resolver
) -> None:
    resolver.answers["hooks.example.test"] = [["127.0.0.1"]]
    port = receiver.base_url.rsplit(":", 1)[1]
    config = sink_config(tmp_path, webhook(f"http://hooks.example.test:{port}/hook?key=k-secret"))
    async with harness(config) as h, h.service() as service:
        await ingest(h.store, make_events(3))
        await eventually_async(lambda: service.runners[0].stats.state == "paused", 10)

        async def recorded() -> bool:
            current = await h.state.state("hook")
            return current is not None and current.last_error is not None

        await eventually_async(recorded, 10)
        state = await h.state.state("hook")
        assert await h.state.dead_letters("hook") == []
    assert receiver.requests == []
    assert state is not None and state.paused
    assert state.last_error == (
        f"http://hooks.example.test:{port}/hook: hooks.example.test resolves to 127.0.0.1,"
        f" a loopback address; {HINT}"
    )


async def test_one_refused_address_among_public_ones_refuses_the_name(
    resolver: Resolver,
) -> None:
    resolver.answers["mixed.example.test"] = [["93.184.216.34", "10.0.0.7"]]
    network = CheckedNetwork(allow_private=False)
    with pytest.raises(AddressRefused, match=r"resolves to 10\.0\.0\.7, a private address"):
        await network.connect_tcp("mixed.example.test", 443, timeout=5)
    resolver.answers["meta.example.test"] = [["169.254.169.254"]]
    with pytest.raises(AddressRefused, match="a cloud metadata address, never allowed"):
        await CheckedNetwork(allow_private=True).connect_tcp("meta.example.test", 80, timeout=5)


class Recorded(httpcore.AsyncNetworkBackend):
    """A network that records where it was asked to connect, and connects nowhere."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connected.append(host)
        return httpcore.AsyncMockStream([])


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    resolver: Resolver,
) -> None:
    # DNS rebinding: the first answer is public, any later one private.
    resolver.answers["rebind.example.test"] = [["93.184.216.34"], ["127.0.0.1"]]
    recorded = Recorded()
    network = CheckedNetwork(allow_private=False, network=recorded)
    await network.connect_tcp("rebind.example.test", 443, timeout=5)
    assert recorded.connected == ["93.184.216.34"]
    assert resolver.lookups == ["rebind.example.test"]
    with pytest.raises(AddressRefused):  # the next connection looks up again, and is judged
        await network.connect_tcp("rebind.example.test", 443, timeout=5)


async def test_allow_private_delivers_to_a_name_on_loopback_with_its_host_header(
    tmp_path: Path, receiver: Receiver, resolver: Resolver
) -> None:
    resolver.answers["hooks.example.test"] = [["127.0.0.1"]]
    port = receiver.base_url.rsplit(":", 1)[1]
    url = f"http://hooks.example.test:{port}/hook"
    config = sink_config(tmp_path, webhook(url, "allow_private = true\n"))
    events = make_events(5)
    async with harness(config) as h, h.service():
        await ingest(h.store, events)
        await eventually_async(lambda: len(receiver.ids) == 5, 10)
    assert {headers["host"] for headers, _ in receiver.requests} == {f"hooks.example.test:{port}"}
