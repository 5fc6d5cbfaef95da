"""Which addresses a webhook may reach."""

from __future__ import annotations

import ipaddress

import pytest

from ronghe.webhooks import ssrf


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("169.254.10.1", "link-local"), ("fe80::1", "link-local"), ("224.0.0.251", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"),
    ("100.64.0.1", "not a public"), ("240.0.0.1", "private"),
])
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    why = ssrf.why_refused(ipaddress.ip_address(address), [])
    assert why is not None and reason in why


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert ssrf.why_refused(ipaddress.ip_address(address), []) is None


def test_allowed_networks_open_only_what_they_name() -> None:
    allowed = ssrf.parse_networks(["10.20.0.0/16", "127.0.0.1/32"])
    assert ssrf.why_refused(ipaddress.ip_address("10.20.3.4"), allowed) is None
    assert ssrf.why_refused(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert ssrf.why_refused(ipaddress.ip_address("127.0.0.2"), allowed) is not None
    assert ssrf.why_refused(ipaddress.ip_address("10.21.0.1"), allowed) is not None


def test_a_name_is_checked_by_every_address_it_resolves_to() -> None:
    with pytest.raises(ssrf.Refused, match=r"resolves to .*loopback"):
        ssrf.resolve("http://localhost:8000/hook", [])
    target = ssrf.resolve("http://localhost:8000/hook?x=1",
                          ssrf.parse_networks(["127.0.0.0/8", "::1/128"]))
    assert target.address.is_loopback and target.port == 8000
    assert target.target == "/hook?x=1" and target.host == "localhost"


@pytest.mark.parametrize("url", ["", "ftp://example.com/", "http:///x", "example.com/x",
                                 "http://u:p@example.com/", "http://[::1/", "https://a:99999/"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ssrf.BadRequest):
        ssrf.resolve(url, [])


# Issue 26, item 6: an IPv6 address that a relay or gateway turns into an IPv4 connection is
# refused as that IPv4 address is.
@pytest.mark.parametrize(("address", "kind", "inner", "reason"), [
    ("2002:7f00:1::", "6to4", "127.0.0.1", "loopback"),
    ("2002:a9fe:a9fe::", "6to4", "169.254.169.254", "metadata"),
    ("2002:a00:1::1", "6to4", "10.0.0.1", "private"),
    ("2002:a9fe:101::", "6to4", "169.254.1.1", "link-local"),
    ("2002::", "6to4", "0.0.0.0", "unspecified"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted: 0x80ff:0xfffe).
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo", "127.0.0.1", "loopback"),
    # Teredo with a public client and a private server: still refused, for the server.
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "Teredo server", "10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "NAT64", "127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64", "169.254.169.254", "metadata"),
    ("64:ff9b:1::c0a8:101", "NAT64", "192.168.1.1", "private"),
    ("::ffff:169.254.169.254", "", "", "metadata"),
])
def test_addresses_that_embed_a_refused_ipv4_are_refused_as_it(address: str, kind: str,
                                                               inner: str, reason: str) -> None:
    why = ssrf.why_refused(ipaddress.ip_address(address), [])
    assert why is not None and reason in why
    if kind:
        assert f"a {kind} address for {inner}," in why


def test_a_6to4_address_of_a_public_ipv4_passes_and_allowed_networks_apply_inside() -> None:
    assert ssrf.why_refused(ipaddress.ip_address("2002:808:808::1"), []) is None
    # Opening 127.0.0.1 opens its 6to4 form too: exactly as the IPv4 address itself.
    allowed = ssrf.parse_networks(["127.0.0.1/32"])
    assert ssrf.why_refused(ipaddress.ip_address("2002:7f00:1::"), allowed) is None
    assert ssrf.why_refused(ipaddress.ip_address("2002:7f00:2::"), allowed) is not None
    # Opening the IPv6 range alone does not open the loopback it leads to.
    sixtofour = ssrf.parse_networks(["2002::/16"])
    assert ssrf.why_refused(ipaddress.ip_address("2002:7f00:1::"), sixtofour) is not None


@pytest.mark.parametrize("url", ["http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/",
                                 "http://[64:ff9b::7f00:1]:8080/x"])
def test_resolve_refuses_embedded_literals(url: str) -> None:
    with pytest.raises(ssrf.Refused, match=r"(6to4|NAT64) address for "):
        ssrf.resolve(url, [])
