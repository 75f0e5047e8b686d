"""Where the events of a streamed body end, so a fault can act "after N events".

What an event is depends on the body's ``content-type``, and each counter follows the format's
own rule, so a cut after N events leaves exactly N events a client can read:

- ``text/event-stream``: a Server-Sent Event, dispatched by a blank line after at least one
  ``data`` field (WHATWG HTML §9.2.6 "Interpreting an event stream": lines end with CRLF, LF or
  CR; a block of only comments or other fields dispatches nothing and is not counted);
- ``application/grpc`` (``+proto``, ``+json`` …) and ``application/grpc-web``: a
  length-prefixed message (gRPC's PROTOCOL-HTTP2.md: 1 flag byte, 4 length bytes, the message;
  a gRPC-Web trailer frame, flag ``0x80``, is not a message);
- anything else: a non-blank line ending in LF (NDJSON, JSON Lines, log streams).

Counters are pure and keep only a few bytes of state, whatever the size of the body.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["EventCounter", "GrpcMessages", "Lines", "SseEvents", "counter_for", "kind_of"]


class EventCounter(Protocol):
    #: what one event is called in notes and docs ("SSE event", "gRPC message", "line")
    noun: str

    def scan(self, data: bytes, limit: int) -> list[int]:
        """The offsets in ``data`` just past each event that ends in it, in order, at most
        ``limit`` (≥ 1) of them: a caller asks for no more than it still needs, and feeds
        nothing after it got them."""
        ...


def kind_of(content_type: str) -> str:
    """``"sse"``, ``"grpc"`` or ``"lines"`` for a ``content-type`` value."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        return "sse"
    base = media.split("+", 1)[0]
    if base in ("application/grpc", "application/grpc-web"):
        return "grpc"
    return "lines"


def counter_for(content_type: str) -> EventCounter:
    """A fresh counter for a body of this ``content-type``."""
    kind = kind_of(content_type)
    if kind == "sse":
        return SseEvents()
    if kind == "grpc":
        return GrpcMessages()
    return Lines()


_LINE_END = re.compile(rb"\r\n|\r|\n")


class SseEvents:
    """Server-Sent Events: a blank line ends an event if a ``data`` field came before it."""

    noun = "SSE event"

    def __init__(self) -> None:
        #: the first bytes of the current line (enough to tell a ``data`` field), its length
        self._head = b""
        self._length = 0
        self._has_data = False
        #: the last piece ended with CR: an LF starting the next one belongs to that line end
        self._after_cr = False
        #: ... and that CR ended an event, which ends after the LF if the next piece starts
        #: with one (so where an event ends never depends on how the body was split)
        self._pending_end = False

    def scan(self, data: bytes, limit: int) -> list[int]:
        ends: list[int] = []
        start = 0
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                start = 1
            if self._pending_end:  # the CR that ended the event was its line end after all
                self._pending_end = False
                ends.append(start)
                if len(ends) >= limit:
                    return ends
        for m in _LINE_END.finditer(data, start):
            self._add(data[start : m.start()])
            start = m.end()
            # a CR last in the piece may be the first half of a CRLF split between pieces
            split = m.group() == b"\r" and start == len(data)
            self._after_cr = split
            if self._length == 0:
                if self._has_data:
                    self._has_data = False
                    if split:  # the event ends after the LF, if one comes: decided next piece
                        self._pending_end = True
                    else:
                        ends.append(start)
                        if len(ends) >= limit:
                            return ends
            else:
                name = self._head.split(b":", 1)[0] if b":" in self._head else self._head
                if name == b"data" and (b":" in self._head or self._length == 4):
                    self._has_data = True
            self._head, self._length = b"", 0
        self._add(data[start:])
        return ends

    def _add(self, part: bytes) -> None:
        if len(self._head) < 5:
            self._head += part[: 5 - len(self._head)]
        self._length += len(part)


class GrpcMessages:
    """gRPC length-prefixed messages (gRPC-Web trailer frames are not messages)."""

    noun = "gRPC message"

    def __init__(self) -> None:
        self._prefix = b""
        #: bytes of the current message still to come (0: reading a prefix)
        self._remaining = 0
        self._trailer = False

    def scan(self, data: bytes, limit: int) -> list[int]:
        ends: list[int] = []
        i, n = 0, len(data)
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if not self._remaining and self._end(i, ends) >= limit:
                    return ends
                continue
            take = min(5 - len(self._prefix), n - i)
            self._prefix += data[i : i + take]
            i += take
            if len(self._prefix) == 5:
                self._trailer = bool(self._prefix[0] & 0x80)
                self._remaining = int.from_bytes(self._prefix[1:], "big")
                self._prefix = b""
                if not self._remaining and self._end(i, ends) >= limit:
                    return ends
        return ends

    def _end(self, offset: int, ends: list[int]) -> int:
        if not self._trailer:
            ends.append(offset)
        return len(ends)


class Lines:
    """Non-blank lines ending in LF (a CR before the LF belongs to the line end)."""

    noun = "line"

    def __init__(self) -> None:
        self._content = False

    def scan(self, data: bytes, limit: int) -> list[int]:
        ends: list[int] = []
        start = 0
        while (lf := data.find(b"\n", start)) >= 0:
            if self._content or data[start:lf].strip(b"\r"):
                ends.append(lf + 1)
                if len(ends) >= limit:
                    return ends
            self._content = False
            start = lf + 1
        if data[start:].strip(b"\r"):
            self._content = True
        return ends
