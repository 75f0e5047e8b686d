"""Which socket a destination reaches, however its address is spelled.

A loop check that compares address *strings* is bypassed by every other spelling of the same
address: ``0.0.0.0`` (Linux connects it to the local host), ``0x7f000001``, ``2130706433``,
``127.1``, ``0177.0.0.1`` (the BSD ``inet_aton`` forms, which ``getaddrinfo`` and therefore
aiohttp accept), ``[::ffff:127.0.0.1]`` (IPv4-mapped), ``[::1]``. Everything here turns an
address into the IP the kernel would connect to first, then compares IPs.

Pure functions, apart from :func:`is_local_ip`, which asks the kernel (a bind, no traffic).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_UNSPECIFIED = (ipaddress.IPv4Address("0.0.0.0"), ipaddress.IPv6Address("::"))


def _inet_aton_part(text: str) -> int | None:
    """One part of a BSD ``inet_aton`` address: decimal, octal (leading 0) or hex (0x)."""
    if not text:
        return None
    lower = text.lower()
    try:
        if lower.startswith("0x"):
            return int(lower[2:], 16) if len(lower) > 2 else 0
        if len(lower) > 1 and lower.startswith("0"):
            return int(lower[1:], 8)
        return int(lower, 10) if lower.isdigit() else None
    except ValueError:
        return None


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``inet_aton(3)`` reads from ``text`` (``127.1``, ``0x7f000001``,
    ``2130706433``, ``0177.0.0.1``), or ``None``. Only the strict form: no trailing text."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    nums = [v for v in values if v is not None]
    # a.b.c.d: each a byte; a.b.c: c fills 16 bits; a.b: b fills 24 bits; a: 32 bits.
    last_bits = 8 * (5 - len(nums))
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 1 << last_bits:
        return None
    value = 0
    for n in nums[:-1]:
        value = (value << 8) | n
    value = (value << last_bits) | nums[-1]
    return ipaddress.IPv4Address(value)


def canonical_ip(host: str) -> IPAddress | None:
    """The IP a connection to ``host`` goes to, if ``host`` is any spelling of an IP literal;
    ``None`` for a name. IPv4-mapped IPv6 addresses become their IPv4 address; a zone id
    (``fe80::1%eth0``) is dropped."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.partition("%")[0]
    if not text:
        return None
    try:
        ip: IPAddress = ipaddress.ip_address(text)
    except ValueError:
        if ":" in text:
            return None
        v4 = inet_aton(text)
        if v4 is None:
            return None
        ip = v4
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_this_host(ip: IPAddress) -> bool:
    """Does a connection to ``ip`` stay on this machine? Loopback and the unspecified address
    (``0.0.0.0`` / ``::``, which Linux connects to the local host) always do; any other
    address only if it is one of this machine's own."""
    return ip.is_loopback or ip in _UNSPECIFIED or is_local_ip(ip)


@functools.lru_cache(maxsize=256)
def is_local_ip(ip: IPAddress) -> bool:
    """Is ``ip`` an address of this machine? Binding to it succeeds only then (no traffic)."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=4096)  # asked per attempt and per listener; the answer never changes
def reaches(destination: str | IPAddress, bound: str) -> bool:
    """Does connecting to ``destination`` reach a socket bound on ``bound``?

    Conservative: any loopback or unspecified destination is taken to reach any socket bound
    on a loopback or wildcard address (``127.0.0.2`` does not really reach ``127.0.0.1``, but
    refusing a request to it is the safe error); a wildcard bind is reached by any address of
    this machine. A name that is not ``localhost`` is not an IP: the caller resolves it first.
    """
    if isinstance(destination, str):
        if destination.strip().strip("[]").lower().rstrip(".") == "localhost":
            ip: IPAddress | None = ipaddress.IPv4Address("127.0.0.1")
        else:
            ip = canonical_ip(destination)
    else:
        ip = destination
    if ip is None:
        return False
    if bound.lower() == "localhost":
        bound_ip: IPAddress | None = ipaddress.IPv4Address("127.0.0.1")
    else:
        bound_ip = canonical_ip(bound) if bound else _UNSPECIFIED[0]
    if bound_ip is None:
        return False
    if ip == bound_ip:
        return True
    local_dest = ip.is_loopback or ip in _UNSPECIFIED
    if bound_ip in _UNSPECIFIED:
        return is_this_host(ip)
    if bound_ip.is_loopback:
        return local_dest
    return ip in _UNSPECIFIED and is_local_ip(bound_ip)


_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")


def valid_authority(authority: str) -> bool:
    """Is ``authority`` (``Host``, ``:authority`` or an absolute-form URL's) a host and an
    optional port, and nothing else?

    Envoy answers 400 for an authority with characters outside RFC 3986's set
    (``HeaderUtility::authorityIsValid``). chaoskit is stricter about the host part: a DNS name
    (letters, digits, ``-``, ``_``, ``.``), an IPv4 address or a bracketed IPv6 address, because
    the host may become the address it connects to (a ``resolution: NONE`` ServiceEntry,
    ALLOW_ANY passthrough): ``127.0.0.1#.x.test`` or ``127.0.0.1/secret?.x.test`` match
    ``*.x.test`` as text and would reach 127.0.0.1 if pasted into a URL."""
    if not authority or not authority.isascii():
        return False
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return False
        try:
            ipaddress.IPv6Address(authority[1:end])
        except ValueError:
            return False
        rest = authority[end + 1 :]
        if not rest:
            return True
        if not rest.startswith(":"):
            return False
        port = rest[1:]
    else:
        host, sep, port = authority.partition(":")
        if not _HOST_NAME.match(host):
            return False
        if not sep:
            return True
    return port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535
