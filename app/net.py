"""The client's address: the TCP peer, or — only when the peer is one of TRUSTED_PROXIES — what
that proxy wrote in FORWARDED_HEADER (`X-Forwarded-For` or `Forwarded`, never both: a client
could add the header the proxy does not rewrite).

Addresses are canonical (`ipaddress`): ports dropped, `for="ip:port"` and `[v6]:port` read,
IPv4-mapped IPv6 folded to IPv4, one spelling per address. Rate limits key IPv6 clients by
their /64 (`limit_key`): one host usually owns a whole /64 and could otherwise take a new
address, and a new bucket, per request.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Literal

from starlette.requests import Request

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardedHeader = Literal["X-Forwarded-For", "Forwarded"]

IPV6_LIMIT_PREFIX = 64


def parse_address(value: str) -> IPAddress | None:
    """An address as servers and proxies spell it: `203.0.113.7`, `203.0.113.7:4711`,
    `[2001:db8::1]:4711`, `"[2001:db8::1]"`, `::ffff:203.0.113.7` (→ `203.0.113.7`).
    None for anything else (`unknown`, `_hidden`, a host name, garbage)."""
    text = value.strip().strip('"').strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end != -1 else "?"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has at least two
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def limit_key(address: str) -> str:
    """What rate limits count by: the address, or for IPv6 its /64."""
    ip = parse_address(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        bits = 128 - IPV6_LIMIT_PREFIX
        network = ipaddress.IPv6Network((int(ip) >> bits << bits, IPV6_LIMIT_PREFIX))
        return str(network)
    return str(ip)


@functools.cache
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Validated by the settings; parsed once per distinct list.
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _is_trusted(ip: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == network.version and ip in network for network in trusted)


def _x_forwarded_for(request: Request) -> list[str]:
    # Several header lines are one list (RFC 9110 §5.3), in order.
    return [
        hop.strip()
        for line in request.headers.getlist("x-forwarded-for")
        for hop in line.split(",")
        if hop.strip()
    ]


def _forwarded(request: Request) -> list[str]:
    """The `for=` of each element of RFC 7239 `Forwarded` headers, in order ("" when an
    element has none: its position still counts)."""
    hops = []
    for line in request.headers.getlist("forwarded"):
        for element in line.split(","):
            value = ""
            for pair in element.split(";"):
                name, sep, raw = pair.partition("=")
                if sep and name.strip().lower() == "for":
                    value = raw.strip()
            hops.append(value)
    return hops


def client_address(request: Request) -> str:
    """The nearest address that is not a trusted proxy, in canonical form."""
    host = request.client.host if request.client else "unknown"
    peer = parse_address(host)
    if peer is None:
        return host  # not an IP (a Unix socket, a test client's name): taken as it is
    settings = request.app.state.settings
    trusted = _networks(tuple(settings.trusted_proxies))
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    header: ForwardedHeader = settings.forwarded_header
    hops = _forwarded(request) if header == "Forwarded" else _x_forwarded_for(request)
    address = peer
    for hop in reversed(hops):
        ip = parse_address(hop)
        if ip is None:
            break  # an unreadable hop: the last address we could read is the best we know
        address = ip
        if not _is_trusted(ip, trusted):
            break
    return str(address)
