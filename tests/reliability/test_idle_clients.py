"""1,000 concurrent idle keep-alive clients: the proxy keeps serving everyone else, and every
file descriptor comes back once they close."""

from __future__ import annotations

import resource
import socket
import time

import pytest

from tests.reliability.conftest import healthy, open_fds, session, wait_for

CLIENTS = 1000
REQUEST = b"GET http://ratings:9080/idle HTTP/1.1\r\nHost: ratings:9080\r\n\r\n"


@pytest.fixture
def enough_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * CLIENTS + 512  # both ends live in this process, plus upstream connections
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def read_response(s: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, "the proxy closed an idle keep-alive connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    while len(body) < length:
        body += s.recv(65536)
    return head


def test_a_thousand_idle_keep_alive_clients(mesh, enough_fds):
    assert healthy(mesh)
    before = open_fds()
    clients: list[socket.socket] = []
    try:
        for _ in range(CLIENTS):
            s = socket.create_connection(("127.0.0.1", mesh.port), timeout=10)
            clients.append(s)
            s.sendall(REQUEST)
            assert read_response(s).startswith(b"HTTP/1.1 200 ")
        # every client is now idle on an open keep-alive connection
        assert open_fds() >= before + 2 * CLIENTS - 10
        with session(mesh.url) as other:
            for _ in range(50):
                assert other.get("http://ratings:9080/busy", timeout=10).status_code == 200
        # and the idle ones are still served on their old connections
        for s in clients[::97]:
            s.sendall(REQUEST)
            assert read_response(s).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in clients:
            s.close()
    # the proxy closes its side of each: descriptors go back to where they were (give or take
    # pooled upstream connections)
    assert wait_for(lambda: open_fds() <= before + 20, timeout=15), (before, open_fds())
    assert mesh.records_log.total >= CLIENTS + 50
    t0 = time.monotonic()
    assert healthy(mesh)
    assert time.monotonic() - t0 < 5
