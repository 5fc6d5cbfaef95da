"""Which destinations a webhook may reach: public addresses only, unless an operator opens
named networks (``webhook_allowed_networks``) for on-premises receivers.

A name is resolved and *every* address it resolves to is checked, at submit and again at
each delivery (a name that resolved to a public address at submit may resolve to
127.0.0.1 later: DNS rebinding).  The delivery then connects to the address that was
checked, not to a second lookup, so the check and the connection see the same address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ronghe.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_CHARS = 2048
# Cloud metadata services, named even where a broader rule already covers them.
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
# NAT64 (RFC 6052, RFC 8215): a gateway turns these into IPv4 connections to the address in
# their last 32 bits.  The local-use /48 may embed it elsewhere (other RFC 6052 lengths), but
# it is not globally reachable, so it stays refused unless an operator opens it.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Refused(BadRequest):
    """The destination is not allowed (or cannot be resolved)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    # Path and query, as sent in the request line.
    target: str
    address: IPAddress


def parse_networks(values: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses that traffic to ``address`` is handed on to, by kind: a 6to4
    (2002::/16) or Teredo (2001::/32: its server and its client) relay, or a NAT64 gateway."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo", client), ("Teredo server", server)]
    if any(address in net for net in NAT64):
        found.append(("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)))
    return found


def why_refused(address: IPAddress, allowed: Sequence[Network]) -> str | None:
    """None when the address may be reached, else what it is.

    An IPv6 address that reaches an IPv4 one through a translator (6to4, Teredo, NAT64) is
    refused as that IPv4 address would be, and must also pass as itself; an IPv4-mapped one
    (::ffff:a.b.c.d) is the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        else:
            for kind, inner in embedded_ipv4(address):
                reason = why_refused(inner, allowed)
                if reason is not None:
                    return f"a {kind} address for {inner}, {reason}"
    if any(address in net for net in allowed if net.version == address.version):
        return None
    if address in METADATA:
        return "a cloud metadata address"
    # Most specific first: 0.0.0.0 and 169.254/16 count as "private" too.
    for label, hit in (("unspecified", address.is_unspecified),
                       ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local),
                       ("multicast", address.is_multicast),
                       ("private", address.is_private),
                       ("reserved", address.is_reserved)):
        if hit:
            return f"a {label} address"
    if not address.is_global:
        return "not a public address"
    return None


def split(url: str, field: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise BadRequest(f"{field} must be an http or https URL of at most {MAX_URL_CHARS} "
                         "characters", field=field)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BadRequest(f"{field}: not a valid URL ({exc})", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"{field} must be an http or https URL with a host (got "
                         f"{url[:100]!r})", field=field)
    if parts.username or parts.password:
        raise BadRequest(f"{field}: credentials in the URL are not allowed", field=field)
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


def resolve(url: str, allowed: Sequence[Network], field: str = "webhook") -> Target:
    """The checked destination of ``url``; raises Refused naming the reason."""
    scheme, host, port, target = split(url, field)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Refused(f"{field}: cannot resolve host {host!r} ({exc})", field=field) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0])
                                       for i in infos))
    for address in addresses:
        reason = why_refused(address, allowed)
        if reason is not None:
            raise Refused(f"{field}: {host!r} resolves to {address}, {reason}; webhooks go to "
                          "public addresses only (an operator can open networks with "
                          "webhook_allowed_networks)", field=field)
    return Target(scheme, host, port, target, addresses[0])
