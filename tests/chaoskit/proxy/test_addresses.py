"""Every spelling of an address is compared as the IP it connects to."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.proxy.addresses import canonical_ip, inet_aton, reaches, valid_authority

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "spelling",
    ["127.0.0.1", "127.1", "127.0.1", "0x7f000001", "0X7F.0.0.1", "2130706433", "0177.0.0.1",
     "0x7f.0x0.0x0.0x1", "[::ffff:127.0.0.1]", "::ffff:7f00:1", " 127.0.0.1 "],
)  # fmt: skip
def test_spellings_of_loopback(spelling):
    assert canonical_ip(spelling) == LOOPBACK
    assert reaches(spelling, "127.0.0.1")


@pytest.mark.parametrize(
    "text", ["reviews", "1.2.3.256", "08.1.1.1", "1.2.3.4.5", "127.0.0.1x", "", "::g", "1..2"]
)
def test_names_and_invalid_literals_are_not_ips(text):
    assert canonical_ip(text) is None


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_inet_aton_form_agrees_with_the_c_library(value):
    ip = ipaddress.IPv4Address(value)
    b = ip.packed
    forms = [
        str(value),
        hex(value),
        f"{b[0]}.{b[1]}.{value & 0xFFFF}",
        f"{b[0]}.{value & 0xFFFFFF}",
        ".".join(f"0{o:o}" if o else "0" for o in b),
    ]
    for form in forms:
        assert inet_aton(form) == ip, form
        assert socket.inet_aton(form) == b, form  # what getaddrinfo (and aiohttp) would use


def test_the_unspecified_address_reaches_the_local_host():
    assert reaches("0.0.0.0", "127.0.0.1")
    assert reaches("::", "127.0.0.1")
    assert reaches("::1", "127.0.0.1")  # conservative: any loopback reaches any loopback bind
    assert reaches("localhost", "127.0.0.1")


def test_a_wildcard_bind_is_reached_by_every_local_address_only():
    assert reaches("127.0.0.1", "0.0.0.0")
    assert reaches("0x7f000001", "::")
    assert not reaches("192.0.2.7", "0.0.0.0")  # TEST-NET-1: no interface has it
    assert not reaches("192.0.2.7", "127.0.0.1")
    assert not reaches("reviews", "127.0.0.1")  # a name: resolved elsewhere, not here


@pytest.mark.parametrize(
    "authority",
    ["reviews", "reviews:9080", "Reviews.Default.svc.cluster.local", "_grpc.x.test:443",
     "127.0.0.1:80", "[::1]", "[::1]:8080", "foo.x.test."],
)  # fmt: skip
def test_valid_authorities(authority):
    assert valid_authority(authority)


@pytest.mark.parametrize(
    "authority",
    ["127.0.0.1#.x.test", "localhost#.x.test", "127.0.0.1/secret?.x.test", "a@127.0.0.1",
     "x.test:", "x.test:0", "x.test:65536", "x.test:80:80", "ex ample", "ünicode.test", "",
     ":80", "[::1", "[::1]x", "[zz]:80", "a%2fb", "a\\b", "x.test:+80"],
)  # fmt: skip
def test_invalid_authorities(authority):
    assert not valid_authority(authority)
