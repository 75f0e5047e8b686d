"""Bodies in memory: a global budget, refusals that never buffer, and memory returned at once.

Issue 12 item 8: twenty concurrent 60 MB uploads took the proxy to 2 GB, and the memory stayed
until the cyclic garbage collector ran. Here a drain upstream (reads and drops bodies, keeps
only their sizes, so the only large bytes objects in this process are the proxy's) and raw
sockets, so each test sees exactly what reached the wire.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chaoskit import accesslog
from chaoskit.proxy import http2_connection
from chaoskit.proxy.api import Proxy
from chaoskit.testing.http2_upstream import Http2Upstream
from tests.reliability.conftest import buffered, service, wait_for

MiB = 1024 * 1024

#: Runs under the project's `filterwarnings = error`: aiohttp's ResourceWarning for a raw
#: request body over 1 MiB used to become an exception in the upstream client (a 500).
pytestmark = [pytest.mark.integration]


class Drain:
    """An upstream that reads each request body and drops it: ``/big/<n>`` answers ``n``
    bytes, ``/stall`` never answers (until the peer leaves), anything else ``200 ok``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        #: (path, body size) of every request received
        self.received: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while not self.stop.is_set():
                    head, rest = _read_head(conn)
                    if head is None:
                        return
                    path = head.split(b" ")[1].decode()
                    size = _drain(conn, _content_length(head), rest)
                    with self.lock:
                        self.received.append((path, size))
                    if path == "/stall":
                        while conn.recv(65536):
                            pass
                        return
                    n = int(path.rsplit("/", 1)[1]) if path.startswith("/big/") else 2
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % n)
                    for i in range(0, n, MiB):
                        conn.sendall(b"k" * min(MiB, n - i))
            except OSError:
                return


def _read_head(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > 65536:
            return None, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _drain(conn: socket.socket, n: int, rest: bytes) -> int:
    got = len(rest)
    while got < n:
        chunk = conn.recv(min(MiB, n - got))
        if not chunk:
            break
        got += len(chunk)
    return got


@pytest.fixture(scope="module")
def drain() -> Iterator[Drain]:
    server = Drain()
    yield server
    server.close()


@pytest.fixture(scope="module")
def budget_proxy(drain: Drain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(service("up", drain.port), seed=3, state_dir=state) as p:
        yield p


class Errors(logging.Handler):
    """mitmproxy's errors (``mitmproxy has crashed!``: an exception inside its layers)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:200])


@pytest.fixture
def proxy(budget_proxy: Proxy, drain: Drain) -> Iterator[Proxy]:
    errors = Errors()
    logging.getLogger("mitmproxy").addHandler(errors)
    try:
        yield from _proxy(budget_proxy, drain)
    finally:
        logging.getLogger("mitmproxy").removeHandler(errors)
    assert errors.messages == []


def _proxy(budget_proxy: Proxy, drain: Drain) -> Iterator[Proxy]:
    budget_proxy.reset()
    g = guard(budget_proxy)
    if g is not None:  # (before the budget existed: no guard)
        g.budget.peak = g.budget.in_use
    with drain.lock:
        drain.received.clear()
    yield budget_proxy
    set_budget(budget_proxy, "")  # back to the default


@contextlib.contextmanager
def occupied(proxy: Proxy, n: int) -> Iterator[None]:
    """``n`` bytes of the budget held, as by requests in flight."""
    g = guard(proxy)
    assert proxy.runtime is not None
    assert proxy.runtime.call(lambda: g.budget.reserve(n))
    try:
        yield
    finally:
        proxy.runtime.call(lambda: g.budget.release(n))


def set_budget(proxy: Proxy, size: str) -> None:
    runtime = proxy.runtime
    assert runtime is not None and runtime.master is not None
    master = runtime.master
    runtime.call(lambda: master.options.update(chaoskit_body_budget=size))


def guard(proxy: Proxy) -> Any:
    assert proxy.runtime is not None and proxy.runtime.master is not None
    return proxy.runtime.master.addons.get("bodybudgetguard")


# -- a raw client ---------------------------------------------------------------------------


def connect(proxy: Proxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    s.settimeout(10)
    return s


def head(method: str, path: str, headers: dict[str, str], host: str = "up") -> bytes:
    lines = [f"{method} http://{host}:9080{path} HTTP/1.1", f"Host: {host}:9080"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(s: socket.socket) -> tuple[int, dict[str, str], int, bytes]:
    """Status, headers, body size, and the first bytes of the body (the rest is dropped)."""
    data, rest = _read_head(s)
    assert data is not None, "no response"
    status = int(data.split(b" ")[1])
    headers = {}
    for line in data.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    n = int(headers.get("content-length", "0"))
    first = rest[:64]
    got = len(rest)
    while got < n:
        chunk = s.recv(min(MiB, n - got))
        if not chunk:
            break
        first = (first + chunk)[:64]
        got += len(chunk)
    return status, headers, got, first


def send_body(s: socket.socket, n: int) -> None:
    block = b"u" * MiB
    for i in range(0, n, MiB):
        s.sendall(block[: min(MiB, n - i)])


def upload(proxy: Proxy, n: int, path: str = "/") -> int:
    with connect(proxy) as s:
        s.sendall(head("POST", path, {"content-length": str(n)}))
        send_body(s, n)
        return read_response(s)[0]


def download(proxy: Proxy, n: int) -> int:
    """The status, or -1 when a 200 came with a body of another size."""
    with connect(proxy) as s:
        s.sendall(head("GET", f"/big/{n}", {}))
        status, _, got, _ = read_response(s)
        return status if status != 200 or got == n else -1


def concurrently(*calls: Callable[[], int]) -> list[int]:
    results: list[int] = []
    threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(results)


def closes(s: socket.socket, timeout: float = 10) -> bool:
    """Does the peer close the connection (all that is left to read is its end)?"""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
    except (TimeoutError, OSError) as e:
        return not isinstance(e, TimeoutError)
    return True


# -- memory returns when the request ends ------------------------------------------------------


def large_buffers(min_size: int) -> list[str]:
    """Every container the collector tracks (instances, dicts, lists, frames, coroutines...)
    that references at least ``min_size`` bytes in bytes, bytearray or memoryview objects — one
    large body, or the chunks of one: what the proxy still holds. Modules are skipped:
    ``gc.get_referents`` on the ``_asyncio`` module can corrupt its free list on Python 3.12
    before 3.12.5 (cpython#122695)."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, types.ModuleType):
            continue
        total = 0
        for ref in gc.get_referents(obj):
            if isinstance(ref, bytes | bytearray):
                total += len(ref)
            elif isinstance(ref, memoryview):
                total += ref.nbytes
        if total >= min_size:
            found.append(f"{total} bytes in a {type(obj).__name__}")
    return found


def test_large_bodies_are_let_go_when_their_requests_end_not_when_the_collector_runs(
    proxy: Proxy,
) -> None:
    # With the cyclic collector off, only reference counting frees memory: what a finished
    # request still holds then is what ``chaoskit proxy`` (frozen heap, high GC thresholds)
    # kept for minutes. Before: every request body, in mitmproxy's stream layer.
    size = 12 * MiB

    def cut_mid_body() -> int:  # the client leaves with half of its body sent
        with connect(proxy) as s:
            s.sendall(head("POST", "/", {"content-length": str(size)}))
            send_body(s, size // 2)
        return 0

    gc.collect()
    gc.disable()
    try:
        statuses = concurrently(
            *[lambda: upload(proxy, size) for _ in range(3)],
            *[lambda: download(proxy, size) for _ in range(2)],
            lambda: upload(proxy, size, "/big/65536"),
            cut_mid_body,
        )
        assert statuses == [0] + [200] * 6
        wait_for(lambda: proxy.in_flight == 0, timeout=10)
        held: list[str] = []

        def nothing_held() -> bool:
            held[:] = large_buffers(size // 2)
            return not held

        assert wait_for(nothing_held, timeout=3), held
    finally:
        gc.enable()


# -- refused before the body is read -------------------------------------------------------------


def test_a_body_over_the_budget_is_answered_before_the_client_sends_it(
    proxy: Proxy, drain: Drain
) -> None:
    set_budget(proxy, "8m")
    records = []
    proxy.core.on_record.append(records.append)
    try:
        with occupied(proxy, 4 * MiB), connect(proxy) as s:
            s.sendall(head("POST", "/upload", {"content-length": str(6 * MiB)}))
            status, headers, _, body = read_response(s)  # not a byte of the body sent
            assert (status, body) == (503, b"envoy overloaded")
            assert headers["connection"] == "close" and headers["server"] == "envoy"
            send_body(s, 6 * MiB)  # read and dropped by the proxy, then the connection ends
            assert closes(s)
            assert guard(proxy).budget.peak == 4 * MiB  # nothing of it was held
    finally:
        proxy.core.on_record.remove(records.append)
    (record,) = records
    assert (record.status, record.flags, record.details) == (503, ("OM",), "overload")
    assert "does not fit in the proxy's body budget (4 MiB of 8 MiB" in record.notes[0]
    line = accesslog.format_text(record)
    assert '"POST /upload HTTP/1.1" 503 OM overload' in line
    assert proxy.stats["http.downstream_rq_overload_close"] == 1
    assert drain.received == []  # nothing reached the upstream


def test_expect_100_continue_gets_the_refusal_instead_of_continue(proxy: Proxy) -> None:
    set_budget(proxy, "4m")
    with occupied(proxy, 3 * MiB), connect(proxy) as s:
        s.sendall(head("PUT", "/", {"content-length": str(2 * MiB), "expect": "100-continue"}))
        assert read_response(s)[0] == 503  # the first status line is the final answer


def test_a_body_larger_than_the_whole_budget_is_413(proxy: Proxy, drain: Drain) -> None:
    set_budget(proxy, "1m")
    with connect(proxy) as s:
        s.sendall(head("POST", "/", {"content-length": str(MiB + 1)}))
        status, _, _, body = read_response(s)
    assert (status, body) == (413, b"Payload Too Large")
    assert proxy.records[-1].details == "request_payload_too_large"
    assert proxy.stats["http.downstream_rq_too_large"] == 1
    assert drain.received == []


def test_over_the_per_request_cap_it_stays_mitmproxys_413_and_no_record_says_otherwise(
    proxy: Proxy, drain: Drain
) -> None:
    set_budget(proxy, "1m")
    with connect(proxy) as s:
        s.sendall(head("POST", "/", {"content-length": str(65 * MiB)}))
        assert read_response(s)[0] == 413
    assert proxy.records == [] and "http.downstream_rq_too_large" not in proxy.stats
    assert drain.received == []
    assert wait_for(lambda: guard(proxy).budget.in_use == 0, timeout=5)


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_when_it_stops_fitting(
    proxy: Proxy, drain: Drain
) -> None:
    set_budget(proxy, "1m")
    chunk = 64 * 1024
    with connect(proxy) as s:
        s.sendall(head("POST", "/", {"transfer-encoding": "chunked"}))
        with contextlib.suppress(OSError):  # the proxy may close first: fine
            for _ in range(64):  # 4 MiB
                s.sendall(b"%x\r\n%s\r\n" % (chunk, b"c" * chunk))
            s.sendall(b"0\r\n\r\n")
        status, _, _, body = read_response(s)
    assert (status, body) == (503, b"envoy overloaded")
    assert proxy.records[-1].flags == ("OM",)
    assert guard(proxy).budget.peak <= MiB
    assert drain.received == []


def test_an_upstream_body_over_the_budget_is_refused_and_the_record_says_which_limit(
    proxy: Proxy,
) -> None:
    set_budget(proxy, "1m")
    # a body that streams holds no budget; a buffered one does
    with buffered(proxy), connect(proxy) as s:
        s.sendall(head("GET", f"/big/{2 * MiB}", {}))
        status, headers, _, _ = read_response(s)
    assert status == 500 and headers["x-chaoskit-error"] == "response-payload-too-large"
    record = proxy.records[-1]
    assert record.details == "response_payload_too_large"
    assert any("body budget (1 MiB" in n for n in record.notes), record.notes


def test_an_http2_upstream_body_over_the_budget_is_refused_as_an_http1_one_is(
    proxy: Proxy,
) -> None:
    """The HTTP/2 upstream path buffers a body (where bodies are buffered) from the same
    budget, with the same reply, before it reads it (its length is announced)."""
    set_budget(proxy, "1m")
    with Http2Upstream("h2") as up:
        proxy.apply(
            service("h2", up.port),
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: h2}\n"
            "spec: {host: h2, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}}",
        )
        try:
            with buffered(proxy), connect(proxy) as s:
                s.sendall(head("GET", f"/bytes/{2 * MiB}", {}, host="h2"))
                status, headers, _, _ = read_response(s)
        finally:
            proxy.apply()
        # refused when its head came: the upstream sent at most one stream window (1 MiB)
        assert up.sent <= http2_connection.STREAM_WINDOW < 2 * MiB
    assert status == 500 and headers["x-chaoskit-error"] == "response-payload-too-large"
    record = proxy.records[-1]
    assert (record.details, record.upstream_host) == (
        "response_payload_too_large", f"127.0.0.1:{up.port}",
    )  # fmt: skip
    assert any("body budget (1 MiB" in n for n in record.notes), record.notes
    assert wait_for(lambda: guard(proxy).budget.in_use == 0, timeout=5)


def test_requests_that_fit_pass_and_small_replies_always_do(proxy: Proxy) -> None:
    set_budget(proxy, "3m")
    assert upload(proxy, 2 * MiB) == 200 and download(proxy, 2 * MiB) == 200
    assert upload(proxy, 3 * MiB) == 200  # the whole budget; its 2-byte reply overdraws it
    assert download(proxy, 3 * MiB) == 200
    # released once the reply has been handed to the connection, which can be just after the
    # client has read it
    assert wait_for(lambda: guard(proxy).budget.in_use == 0, timeout=5)


# -- the budget always comes back ------------------------------------------------------------------


def test_everything_reserved_is_released_however_requests_end(proxy: Proxy) -> None:
    set_budget(proxy, "64m")
    g = guard(proxy)

    def cut_mid_body() -> int:
        with connect(proxy) as s:
            s.sendall(head("POST", "/", {"content-length": str(4 * MiB)}))
            send_body(s, MiB)
        return 0

    def gone_while_upstream_stalls() -> int:
        with connect(proxy) as s:
            s.sendall(head("POST", "/stall", {"content-length": str(MiB)}))
            send_body(s, MiB)
            wait_for(lambda: g.budget.in_use >= MiB, timeout=5)
        return 0

    def refused() -> int:
        return upload(proxy, 100 * MiB // 2 + MiB)  # over 64m with the others: maybe refused

    concurrently(
        cut_mid_body, gone_while_upstream_stalls, refused,
        lambda: upload(proxy, 8 * MiB), lambda: download(proxy, 8 * MiB),
    )  # fmt: skip
    assert wait_for(lambda: g.budget.in_use == 0 and proxy.in_flight == 0, timeout=10), (
        g.budget.in_use
    )
    assert not g._holdings and not g._by_client


def test_the_budget_is_set_from_the_cli_and_the_python_api(drain: Drain, tmp_path) -> None:
    import argparse

    from chaoskit.cli import proxy as cli_proxy

    parser = argparse.ArgumentParser()
    cli_proxy.register(parser.add_subparsers())
    assert parser.parse_args(["proxy", "-f", "x"]).max_buffered_bytes == 256 * MiB
    assert (
        parser.parse_args(["proxy", "-f", "x", "--max-buffered-bytes", "1g"]).max_buffered_bytes
        == 1024 * MiB
    )
    assert (
        parser.parse_args(["proxy", "-f", "x", "--max-buffered-bytes", "0"]).max_buffered_bytes == 0
    )
    for bad in ("lots", "-5", "1t"):
        with pytest.raises(SystemExit):
            parser.parse_args(["proxy", "-f", "x", "--max-buffered-bytes", bad])
    unstarted = Proxy(service("up", drain.port), state_dir=tmp_path / "s", body_budget=MiB)
    assert unstarted.budget_guard.budget.total == MiB  # (one proxy per process: not started)
