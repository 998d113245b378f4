"""Which addresses a webhook sink may connect to: public ones, unless `allow_private`.

A webhook URL is written by the operator, but where its host name points is
decided by DNS, which can change (or be made to change) between two looks. So
the address is judged twice: when the configuration is read, the URL's host if
it names an address without DNS (an address in any form the resolver reads:
`127.1`, `2130706433`, `0x7f.1`, `017700000001`, `[::ffff:127.0.0.1]`, or a
`localhost` name); and at delivery, every address the host resolves to, on each
new connection, which then goes to one of those judged addresses
(`dlrhub/sinks/webhook.py` says how).

| addresses                                                          | allowed              |
|--------------------------------------------------------------------|----------------------|
| cloud metadata (`METADATA` below, `metadata.google.internal`)      | never                |
| loopback (127.0.0.0/8, ::1, `localhost`), unspecified (0.0.0.0, ::) | with `allow_private` |
| link-local (169.254.0.0/16, fe80::/10)                             | with `allow_private` |
| private (10/8, 172.16/12, 192.168/16, fc00::/7)                    | with `allow_private` |
| multicast, or not globally reachable (100.64/10, documentation ...) | with `allow_private` |
| any other                                                          | yes                  |

Metadata addresses stay refused with `allow_private`: they hand out the host's
cloud credentials, and no event consumer lives there. An IPv6 address that
carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged by that IPv4 address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
    )
)
METADATA_NAMES = frozenset({"metadata.google.internal"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# The characters of an IPv4 address written the way inet_aton reads it (and
# getaddrinfo with it): decimal, octal or hex parts, one to four of them.
NUMERIC_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")
ALLOW_HINT = "set allow_private = true on this sink to allow it"


def literal_address(host: str) -> IPAddress | None:
    """The address `host` (a URL's host) names without DNS, or None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if NUMERIC_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_problem(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to `address` ("a loopback address; ..."), or None."""
    judged = _embedded_ipv4(address) or address
    if judged in METADATA:
        return "a cloud metadata address, never allowed"
    if allow_private:
        return None
    kind = _kind(judged)
    if kind is None:
        return None
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} address; {ALLOW_HINT}"


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """What the configuration check says of a webhook URL's host (no DNS lookup)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in METADATA_NAMES:
        return f"{host} is a cloud metadata name, never allowed"
    address = literal_address(host)
    if address is not None:
        problem = address_problem(address, allow_private=allow_private)
        return None if problem is None else f"points at {address}, {problem}"
    if not allow_private and (host in LOOPBACK_NAMES or host.endswith(".localhost")):
        return f"{host} is a loopback name; {ALLOW_HINT}"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"  # connecting to 0.0.0.0 or :: reaches this host
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in PRIVATE):
        return "private"
    if not address.is_global:
        return "non-public"
    return None
