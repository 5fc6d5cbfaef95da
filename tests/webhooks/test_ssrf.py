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
