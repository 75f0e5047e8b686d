"""A scripted upstream for socket-free tests of the request path
(:class:`~chaoskit.proxy.pipeline.Pipeline`): it satisfies
:class:`~chaoskit.proxy.forwarding.UpstreamSender`, answers from a script, and keeps every
request it was sent.

    upstream = FakeUpstream(503, 503, 200)        # two failures, then success (last repeats)
    upstream = FakeUpstream(UpstreamFailure("connection failure", "UF"))   # refused
    upstream = FakeUpstream(hang=True)           # never answers: only a timeout ends it
    upstream = FakeUpstream(streamed(200, FakeBody([b"a", b"b"])))   # a body that streams
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence

from chaoskit.proxy.upstream import UpstreamFailure, UpstreamResponse

#: The body of every scripted answer given as a bare status.
BODY = b"0123456789"

Answer = int | UpstreamResponse | UpstreamFailure


class FakeBody:
    """The rest of a streamed body (:class:`~chaoskit.proxy.replies.BodyStream`): ``pieces``,
    then the end, an exception, or (``then="wait"``) nothing until it is closed."""

    def __init__(self, pieces: Sequence[bytes] = (), then: BaseException | str | None = None):
        self.pieces = list(pieces)
        self.then = then
        self.announced: int | None = None
        self.deadline: float | None = None
        self.on_end: list[Callable[[], None]] = []
        self.closed = 0
        self._closing = asyncio.Event()

    async def read(self) -> bytes:
        if self.pieces:
            return self.pieces.pop(0)
        if isinstance(self.then, BaseException):
            raise self.then
        if self.then == "wait":
            await self._closing.wait()
        return b""

    def close(self) -> None:
        self.closed += 1
        self._closing.set()
        callbacks, self.on_end = self.on_end, []
        for callback in callbacks:
            callback()


def streamed(status: int, body: FakeBody) -> UpstreamResponse:
    """An answer whose body streams (:attr:`UpstreamResponse.rest`)."""
    return UpstreamResponse(status, "", (("content-type", "text/event-stream"),), b"", body)


@dataclasses.dataclass(frozen=True)
class SentRequest:
    method: str
    scheme: str
    address: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), as sent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


class FakeUpstream:
    def __init__(self, *answers: Answer, hang: bool = False) -> None:
        self.answers: list[Answer] = list(answers) or [200]
        self.hang = hang
        self.requests: list[SentRequest] = []
        #: set when the first request arrives (a test can act while one is in flight)
        self.entered = asyncio.Event()

    @property
    def sent(self) -> list[str]:
        """The paths requested, in order."""
        return [r.path for r in self.requests]

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these (the last one repeats)."""
        self.answers = list(answers)

    async def send(
        self, method: str, scheme: str, address: str, port: int, path: str,
        headers: Sequence[tuple[str, str]], body: bytes, connect_timeout: float,
        *, streamable: bool = False, http2: bool = False,
    ) -> UpstreamResponse:  # fmt: skip
        self.requests.append(SentRequest(method, scheme, address, port, path, tuple(headers), body))
        self.entered.set()
        if self.hang:
            await asyncio.Event().wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, UpstreamFailure):
            raise answer
        if isinstance(answer, int):
            return UpstreamResponse(answer, "", (("content-type", "text/plain"),), BODY)
        return answer
