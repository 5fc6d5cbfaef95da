"""The client's address, as login throttling and sign-up limits count it.

The one place that decides whether ``X-Forwarded-For`` is believed: uvicorn runs with
``proxy_headers=False``, so the ASGI scope's ``client`` is always the TCP peer.  The header
counts only when that peer is one of ``trusted_proxies`` (none by default); anyone else
could write any address into it and so escape, or aim, the per-address limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(items: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # Settings validated these already; parsed once per distinct list, not per request.
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def parse_ip(text: str) -> IPAddress | None:
    """An address as proxies write it (IPv6 possibly in brackets), or None when it is not
    one.  IPv4-mapped IPv6 (``::ffff:10.0.0.1``, from dual-stack sockets) becomes IPv4, so
    ``10.0.0.0/8`` matches it."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPAddress | None, networks: Iterable[IPNetwork]) -> bool:
    return ip is not None and any(ip in net for net in networks)


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every ``X-Forwarded-For`` entry, left to right, across repeated header lines."""
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries += [e.strip() for e in value.decode("latin-1").split(",")]
    return entries


def client_address(scope: Mapping[str, Any], trusted_proxies: Sequence[str] = ()) -> str:
    """The client's address for a request's ASGI scope.

    The TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` is read from
    the right (each proxy appends the address it saw), skipping trusted proxies, and the
    first untrusted address is the client.  An entry that is not an IP address ends the
    walk at the proxy that wrote it: everything to its left came from the client, so it
    never becomes the address.  "" when the server gave no peer (a Unix socket)."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    peer_ip = parse_ip(peer)
    address = str(peer_ip) if peer_ip is not None else peer
    networks = _networks(tuple(trusted_proxies))
    if not _trusted(peer_ip, networks):
        return address
    for entry in reversed(forwarded_for(scope.get("headers") or ())):
        ip = parse_ip(entry)
        if ip is None:
            break
        address = str(ip)
        if not _trusted(ip, networks):
            break
    return address
