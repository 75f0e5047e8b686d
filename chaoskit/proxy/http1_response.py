"""Reading one HTTP/1.1 response from an upstream, incrementally and within bounds.

Pure: bytes in, a head and a body out, no sockets (the connection that feeds it lives in
:mod:`chaoskit.proxy.http1_pool`). It is strict where a lenient reading would let an upstream
smuggle a second response or hide a body (RFC 9112 §6.3, as Envoy's codec): conflicting
``content-length`` values, obsolete line folding, a malformed chunk size, a header without a
colon are protocol errors (Envoy's ``UPE``), never guessed at. Limits are Envoy's defaults for
upstream responses: 60 KiB of head (``max_response_headers_kb``) and 100 headers
(``max_response_headers_count``).
"""

from __future__ import annotations

import dataclasses
import enum
import re

#: Envoy's ``max_response_headers_kb`` default.
MAX_HEAD = 60 * 1024
#: Envoy's ``max_response_headers_count`` default.
MAX_HEADERS = 100
#: Longest chunk-size line (with extensions) read before it is a protocol error.
MAX_CHUNK_LINE = 4096

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY_STATUS = frozenset({204, 304})


class ParseError(Exception):
    """The upstream broke HTTP/1.1 framing: Envoy's ``protocol error`` reset (flag ``UPE``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """A final (non-1xx) response head."""

    status: int
    reason: str
    #: every header as received, names in their original case
    headers: tuple[tuple[str, str], ...]
    #: ``content-length`` when the body is framed by it; ``None``: chunked or until close
    length: int | None
    chunked: bool
    #: may the connection carry another request after this response?
    keep_alive: bool


class _State(enum.Enum):
    HEAD = enum.auto()
    LENGTH = enum.auto()  # a body of known length
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_END = enum.auto()  # the CRLF after a chunk's data
    TRAILERS = enum.auto()
    UNTIL_CLOSE = enum.auto()
    DONE = enum.auto()


class ResponseParser:
    """Feed it what the connection receives; :attr:`head` appears, then :attr:`done`.

    ``head_request``: the request was ``HEAD``, so the response has no body whatever its
    headers announce."""

    __slots__ = (
        "_buf",
        "_head_request",
        "_parts",
        "_remaining",
        "_scanned",
        "_state",
        "body_size",
        "head",
        "leftover",
        "trailers",
    )

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for the end of the head
        self._state = _State.HEAD
        self._parts: list[bytes] = []
        self._remaining = 0
        self.head: Head | None = None
        self.body_size = 0
        self.trailers: tuple[tuple[str, str], ...] = ()
        #: bytes received after the response ended: the connection cannot be reused
        self.leftover = False

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def keep_alive(self) -> bool:
        """Can the connection be reused once this response is complete?"""
        return self.done and not self.leftover and self.head is not None and self.head.keep_alive

    def body(self) -> bytes:
        return self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)

    def take(self) -> list[bytes]:
        """The body pieces received since the last call, handed over (a streamed body is not
        kept here); :attr:`body_size` still counts every byte."""
        parts, self._parts = self._parts, []
        return parts

    def feed(self, data: bytes) -> None:
        """Consume ``data``; raises :class:`ParseError` on broken framing."""
        if self._state is _State.LENGTH and not self._buf:
            # the common case: body bytes straight from the socket, no copy into the buffer
            self._take_length(data)
            return
        if self._state is _State.DONE:
            self.leftover = self.leftover or bool(data)
            return
        self._buf += data
        self._advance()

    def feed_eof(self) -> None:
        """The upstream closed the connection. Ends a body framed by the close; raises
        :class:`ParseError` if the response was not complete."""
        if self._state is _State.UNTIL_CLOSE:
            self._state = _State.DONE
            return
        if self._state is not _State.DONE:
            raise ParseError("connection closed before the response was complete")

    # -- the states ------------------------------------------------------------------------

    def _advance(self) -> None:
        while self._buf or self._state is _State.DONE:
            state = self._state
            if state is _State.HEAD:
                if not self._read_head():
                    return
            elif state is _State.LENGTH:
                data = bytes(self._buf)
                self._buf.clear()
                self._take_length(data)
            elif state is _State.UNTIL_CLOSE:
                self._append(bytes(self._buf))
                self._buf.clear()
            elif state is _State.CHUNK_SIZE:
                if not self._read_chunk_size():
                    return
            elif state is _State.CHUNK_DATA:
                n = min(self._remaining, len(self._buf))
                self._append(bytes(self._buf[:n]))
                del self._buf[:n]
                self._remaining -= n
                if self._remaining == 0:
                    self._state = _State.CHUNK_END
            elif state is _State.CHUNK_END:
                if len(self._buf) < 2:
                    return
                if self._buf[:2] != b"\r\n":
                    raise ParseError("chunk data not followed by CRLF")
                del self._buf[:2]
                self._state = _State.CHUNK_SIZE
            elif state is _State.TRAILERS:
                if not self._read_trailers():
                    return
            else:  # DONE
                self.leftover = self.leftover or bool(self._buf)
                self._buf.clear()
                return

    def _take_length(self, data: bytes) -> None:
        n = self._remaining
        if len(data) >= n:
            if n:
                self._append(data[:n] if len(data) > n else data)
            self._remaining = 0
            self._state = _State.DONE
            self.leftover = self.leftover or len(data) > n
            return
        self._append(data)
        self._remaining -= len(data)

    def _append(self, data: bytes) -> None:
        if data:
            self._parts.append(data)
            self.body_size += len(data)

    def _read_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > MAX_HEAD:
                raise ParseError(f"response head larger than {MAX_HEAD // 1024} KiB")
            return False
        if end > MAX_HEAD:
            raise ParseError(f"response head larger than {MAX_HEAD // 1024} KiB")
        raw = bytes(self._buf[:end])
        del self._buf[: end + 4]
        self._scanned = 0
        status, reason, version, headers = _parse_head(raw)
        if 100 <= status < 200:
            if status == 101:
                raise ParseError("101 Switching Protocols to a request that asked for no upgrade")
            return True  # an interim response (100 Continue, 103 Early Hints): read the next
        self._frame(status, reason, version, headers)
        return True

    def _frame(
        self, status: int, reason: str, version: bytes, headers: tuple[tuple[str, str], ...]
    ) -> None:
        """How the body is delimited (RFC 9112 §6.3) and whether the connection stays open."""
        lengths: list[str] = []
        codings: list[str] = []
        connection: list[str] = []
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                lengths.extend(v.strip() for v in value.split(","))
            elif lower == "transfer-encoding":
                codings.extend(v.strip().lower() for v in value.split(",") if v.strip())
            elif lower == "connection":
                connection.extend(v.strip().lower() for v in value.split(","))
        keep_alive = "close" not in connection if version == b"HTTP/1.1" else (
            "keep-alive" in connection
        )  # fmt: skip
        length: int | None = None
        chunked = False
        if lengths and not codings:
            if len(set(lengths)) != 1 or not lengths[0].isdigit() or not lengths[0].isascii():
                raise ParseError(f"invalid content-length: {', '.join(lengths)[:60]!r}")
            length = int(lengths[0])
        if self._head_request or status in _NO_BODY_STATUS:
            self.head = Head(status, reason, headers, 0, False, keep_alive)
            self._state = _State.DONE
            return
        if codings:
            chunked = codings[-1] == "chunked"
            # RFC 9112 §6.1: with both, transfer-encoding wins and the connection is not reused
            keep_alive = keep_alive and chunked and not lengths
        elif length is None:
            keep_alive = False  # delimited by the close
        self.head = Head(status, reason, headers, length, chunked, keep_alive)
        if chunked:
            self._state = _State.CHUNK_SIZE
        elif length is not None:
            self._remaining = length
            self._state = _State.LENGTH if length else _State.DONE
        else:
            self._state = _State.UNTIL_CLOSE

    def _read_chunk_size(self) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise ParseError("chunk size line too long")
            return False
        line = bytes(self._buf[:end]).partition(b";")[0].strip(b" \t")
        del self._buf[: end + 2]
        if not _HEX.fullmatch(line):
            raise ParseError(f"invalid chunk size {line[:20]!r}")
        size = int(line, 16)
        if size == 0:
            self._state = _State.TRAILERS
        else:
            self._remaining = size
            self._state = _State.CHUNK_DATA
        return True

    def _read_trailers(self) -> bool:
        if self._buf[:2] == b"\r\n":
            del self._buf[:2]
            self._state = _State.DONE
            return True
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ParseError("trailers too large")
            return False
        raw = bytes(self._buf[:end])
        del self._buf[: end + 4]
        self.trailers = _parse_fields(raw.split(b"\r\n"))
        self._state = _State.DONE
        return True


def _parse_head(raw: bytes) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ParseError(f"invalid status line {lines[0][:60]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise ParseError(f"invalid status code {code[:10]!r}")
    reason = parts[2].decode("latin-1") if len(parts) == 3 else ""
    if "\r" in reason or "\n" in reason:
        raise ParseError("control character in the reason phrase")
    return int(code), reason, parts[0], _parse_fields(lines[1:])


def _parse_fields(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    if len(lines) > MAX_HEADERS:
        raise ParseError(f"more than {MAX_HEADERS} headers")
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise ParseError("obsolete line folding")
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            raise ParseError(f"invalid header line {line[:60]!r}")
        value = value.strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            raise ParseError(f"control character in header {name[:40]!r}")
        out.append((name.decode("ascii"), value.decode("latin-1")))
    return tuple(out)
