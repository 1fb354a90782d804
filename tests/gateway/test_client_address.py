"""gateway.client_address (pure): the client behind the TLS peer, trusted proxies only, and
the key its limits are counted under."""

from __future__ import annotations

import pytest

from gateway.client_address import client_address, limit_key, parse_networks

PROXIES = parse_networks("10.0.0.5, 10.1.0.0/16, fd00::/8")


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks(" 10.0.0.5 ,192.168.1.7/24,::1")] == [
        "10.0.0.5/32",
        "192.168.1.0/24",
        "::1/128",
    ]
    with pytest.raises(ValueError, match=r"'proxy\.example'"):
        parse_networks("10.0.0.5, proxy.example")


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # Not a trusted proxy: what the client writes is ignored.
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        ("203.0.113.7", [], "203.0.113.7"),
        # A trusted proxy: the address it appended.
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        # A chain of trusted proxies, and a forged entry further left that is never reached.
        ("10.0.0.5", ["1.2.3.4, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        ("10.0.0.5", ["1.2.3.4", "198.51.100.1", "10.1.2.3"], "198.51.100.1"),
        # Ports and brackets as some proxies write them.
        ("10.0.0.5", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
        # Nothing (or nothing readable) appended: the last address a trusted hop vouched for.
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["unknown"], "10.0.0.5"),
        ("10.0.0.5", ["garbage, 10.1.9.9"], "10.1.9.9"),
        # IPv4-mapped IPv6 peers (dual-stack sockets) are IPv4.
        ("::ffff:10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("::ffff:203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
    ],
)
def test_client_address(peer: str, forwarded: list[str], expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("10.0.0.5", ["198.51.100.1"], ()) == "10.0.0.5"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_limit_key(address: str, key: str) -> None:
    assert limit_key(address) == key
