"""An HPACK encoder (RFC 7541) that never touches the dynamic table and never Huffman-codes.

Why: hpack's own ``Encoder`` searches its dynamic table linearly for every header and
Huffman-codes every new string in Python. Sending a gRPC request's headers (h2's
``send_headers``, timed alone) took 47 µs with it and takes 26 µs with this encoder and h2's
redundant outbound checks off, out of about 1.2 ms of the proxy's CPU per call
(docs/performance.md §gRPC). A header block made only of static-table references and plain
literals is valid HPACK for every decoder, costs a few dict lookups and byte joins, and keeps
no compression state — so nothing a peer's ``SETTINGS_HEADER_TABLE_SIZE`` does can put the two
ends out of step. The price is a larger block (a few hundred bytes for a gRPC request instead
of tens once the peer has indexed it), which on the proxy's loopback and LAN hops is noise.

The first block, and the first one after the peer changes its table size, starts with a
dynamic table size update to 0 (§6.3): the peer then knows this side indexes nothing.
``authorization``, ``cookie`` and ``proxy-authorization`` are sent as "never indexed" (§6.2.3)
so intermediaries do not index them either, as hpack's own encoder does for them.

Drop-in for h2's ``H2Connection.encoder``: h2 calls :meth:`encode` with the header block and
sets :attr:`header_table_size` when the peer's setting changes. chaoskit's upstream connections
(:mod:`chaoskit.proxy.http2_connection`) use it, and so do mitmproxy's HTTP/2 connections to
clients (patch ``http2.literal_headers``, :func:`with_literal_encoder`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from hpack.table import HeaderTable

#: §6.2.2 literal without indexing, §6.2.3 never indexed: 4-bit prefix for the name's index.
_WITHOUT_INDEXING = 0x00
_NEVER_INDEXED = 0x10
#: §6.3 dynamic table size update to 0.
_TABLE_SIZE_ZERO = b"\x20"
_SENSITIVE = frozenset({b"authorization", b"cookie", b"proxy-authorization"})


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """§5.1: ``value`` with an N-bit prefix, the prefix's high bits taken from ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """§5.2: a string literal, not Huffman-coded (H bit 0)."""
    return _integer(len(data), 7, 0) + data


def _static_tables() -> tuple[dict[tuple[bytes, bytes], bytes], dict[bytes, int]]:
    """Whole-field representations (§6.1) and the first index of each name, 1-based."""
    fields: dict[tuple[bytes, bytes], bytes] = {}
    names: dict[bytes, int] = {}
    for i, (name, value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
        fields.setdefault((name, value), _integer(i, 7, 0x80))
        names.setdefault(name, i)
    return fields, names


_FIELDS, _NAMES = _static_tables()


def encode_field(name: bytes, value: bytes) -> bytes:
    """One header field: an indexed static entry when name and value both match one, else a
    literal that never enters the dynamic table (name by static index where there is one)."""
    whole = _FIELDS.get((name, value))
    if whole is not None:
        return whole
    kind = _NEVER_INDEXED if name in _SENSITIVE else _WITHOUT_INDEXING
    index = _NAMES.get(name)
    if index is not None:
        return _integer(index, 4, kind) + _string(value)
    return bytes((kind,)) + _string(name) + _string(value)


class LiteralEncoder:
    """h2's encoder, without a dynamic table (see the module docstring)."""

    def __init__(self) -> None:
        self._announce = True
        self._table_size = 4096

    @property
    def header_table_size(self) -> int:
        """The peer's ``SETTINGS_HEADER_TABLE_SIZE``, as h2 reports it; this side uses 0."""
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._announce = True

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """The header block of ``headers`` (``(name, value)`` bytes, names in lower case).
        ``huffman`` is h2's argument; it is ignored: strings are never Huffman-coded."""
        parts = [encode_field(name, value) for name, value in headers]
        if self._announce:
            self._announce = False
            parts.insert(0, _TABLE_SIZE_ZERO)
        return b"".join(parts)


def with_literal_encoder(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap an ``H2Connection`` subclass's ``__init__`` (mitmproxy's ``BufferedH2Connection``)
    so that every connection it builds encodes with a :class:`LiteralEncoder`."""

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.encoder = LiteralEncoder()

    return __init__
