"""Running out of descriptors, the connection cap, and the request header timeout.

300 idle connections at ``ulimit -n 256`` (macOS's default) used to kill ``chaoskit proxy -f
DIR``: the file watcher's folder scan raised EMFILE outside its guard. Now the proxy caps its
connections below the limit (Envoy's listener ``max_connections`` / overload manager), closes
the ones past it at once, says so once on standard error, recovers, and a client that does not
finish its request head in time gets Envoy's ``408 request header timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

from chaoskit.cli import proxy as cli_proxy
from chaoskit.proxy.api import Proxy
from chaoskit.proxy.codec_limits import REQUEST_HEADER_TIMEOUT
from tests.reliability.conftest import service, session, wait_for
from tests.reliability.test_hostile_input import read_response_head
from tests.soak import soak
from tests.soak.soak import BAD_STDERR, ProxyProcess

NOFILE = 256  # macOS's default soft limit
IDLE = 300
REQUEST = b"GET http://ratings:9080/h HTTP/1.1\r\nHost: ratings:9080\r\n"


def pause(seconds: float) -> None:
    threading.Event().wait(seconds)


class LimitedProxy(ProxyProcess):
    """``chaoskit proxy`` under ``ulimit -n NOFILE``, soft and hard (so it cannot raise it)."""

    def __init__(self, *args, nofile: int, **kwargs) -> None:
        def limit() -> None:  # in the child, before exec
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        popen = subprocess.Popen

        def limited_popen(*a, **k):
            return popen(*a, preexec_fn=limit, **k)

        with mock.patch.object(soak.subprocess, "Popen", limited_popen):
            super().__init__(*args, **kwargs)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def stats(admin_url: str) -> dict[str, float]:
    with session() as s:
        data = s.get(f"{admin_url}/stats?format=json", timeout=5).json()
    return {row["name"]: row["value"] for row in data["stats"]}


def closed_at_once(port: int, within: float = 3.0) -> bool:
    """A new connection is closed by the proxy without a byte of answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as s:
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True


def get(url: str, host: str = "ratings") -> int:
    with session(url) as s:
        return s.get(f"http://{host}:9080/h", timeout=10).status_code


# -- the descriptor limit, under the CLI ------------------------------------------------------


def test_more_idle_connections_than_descriptors_do_not_kill_the_proxy(upstreams, tmp_path):
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    (mesh / "ratings.yaml").write_text(service("ratings", upstreams["ratings"].port))
    with LimitedProxy([mesh], tmp_path / "state", nofile=NOFILE) as proxy:
        proxy.wait_ready()
        idle_fds = fds(proxy.pid)
        clients: list[socket.socket] = []
        peak = idle_fds
        try:
            for _ in range(IDLE):
                clients.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=5))
                peak = max(peak, fds(proxy.pid))
            line = proxy.stderr.wait_for("connection limit reached", timeout=15)
            assert "max_connections 48" in line  # (256 - 160 reserved) / 2 per connection
            pause(1.0)  # two watcher ticks with the proxy full: the scan needs descriptors
            assert proxy.proc.poll() is None, "\n".join(proxy.stderr.snapshot())
            # full, but the admin listener still answers (Envoy's ignore_global_conn_limit)
            counters = stats(proxy.admin_url)
            assert counters["listener.downstream_cx_overflow"] >= IDLE - 48 - 8
            assert closed_at_once(proxy.port)  # a new client is shed, not queued
        finally:
            for c in clients:
                c.close()
        proxy.stderr.wait_for("accepting connections again", timeout=15)
        assert get(proxy.url) == 200  # served once the idle clients left

        # and the watcher still reloads: a new service appears
        (mesh / "extra.yaml").write_text(service("extra", upstreams["v1"].port))
        proxy.stderr.wait_for("reloaded", timeout=15)
        assert get(proxy.url, "extra") == 200
        peak = max(peak, fds(proxy.pid))
    err = proxy.stderr.snapshot()
    assert sum("connection limit reached" in line for line in err) == 1, err
    assert sum("accepting connections again" in line for line in err) == 1, err
    assert not [line for line in err if BAD_STDERR.search(line) or "Too many open" in line]
    assert peak < NOFILE, (idle_fds, peak)
    assert proxy.proc.returncode == 0


def test_a_failed_scan_keeps_the_last_fingerprint_and_tries_again(monkeypatch, tmp_path, capsys):
    """Unit: the watcher's folder scan, out of descriptors, neither raises (Python 3.11:
    the watcher died) nor reads as "every file deleted" (3.12's ``rglob`` returns nothing:
    a spurious reload); the edit made meanwhile is picked up by the first scan that works."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("x: 1\n")
    real = os.scandir

    class Stop:
        ticks = 0

        def wait(self, seconds: float) -> bool:
            self.ticks += 1
            if self.ticks == 2:  # an edit while the scans fail
                (tmp_path / "sub" / "a.yaml").write_text("x: 22\n")
            return self.ticks > 6

    stop = Stop()

    def scandir(path="."):
        if 1 <= stop.ticks <= 3:
            raise OSError(errno.EMFILE, "Too many open files")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    first = cli_proxy._fingerprint([str(tmp_path)])
    assert isinstance(first, tuple)
    assert [Path(f).name for f, _, _ in first] == ["a.yaml"]
    stop.ticks = 1
    assert isinstance(cli_proxy._fingerprint([str(tmp_path)]), OSError)
    stop.ticks = 0

    class FakeProxy:
        rebased = 0
        validation = mock.Mock(resources=[1])

        def rebase(self, *files: str) -> None:
            self.rebased += 1

    fake = FakeProxy()
    cli_proxy._watch(fake, [str(tmp_path)], stop, first)  # type: ignore[arg-type]
    assert fake.rebased == 1
    err = capsys.readouterr().err
    assert err.count("cannot scan the configuration files") == 1
    assert "Too many open files" in err
    assert err.count("reloaded 1 resources") == 1


def test_the_fingerprint_sees_what_the_loader_loads(tmp_path):
    conf = tmp_path / "conf"
    (conf / ".git").mkdir(parents=True)
    (conf / "deep" / "er").mkdir(parents=True)
    for name in ("a.yaml", "b.yml", "notes.txt", ".hidden.yaml", ".git/c.yaml", "deep/er/d.yaml"):
        (conf / name).write_text(name)
    single = tmp_path / "s.yaml"
    single.write_text("s")
    found = cli_proxy._fingerprint([str(conf), str(single), str(tmp_path / "missing")])
    assert isinstance(found, tuple)
    names = [os.path.relpath(f, tmp_path) for f, _, _ in found]
    assert names == ["conf/a.yaml", "conf/b.yml", "conf/deep/er/d.yaml", "s.yaml", "missing"]
    assert found[-1][1:] == (-1, -1)


# -- the cap, in-process ----------------------------------------------------------------------


@pytest.fixture
def ratings_mesh(upstreams) -> str:
    return service("ratings", upstreams["ratings"].port)


def test_connections_past_max_connections_are_closed_at_once(ratings_mesh, tmp_path, caplog):
    with Proxy(
        ratings_mesh, state_dir=tmp_path, max_connections=4, request_headers_timeout=0
    ) as proxy:
        held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(4)]
        try:
            assert wait_for(lambda: proxy.limits.open_connections == 4)
            t0 = time.monotonic()
            assert closed_at_once(proxy.port)
            assert closed_at_once(proxy.port)
            assert time.monotonic() - t0 < 3
            assert wait_for(lambda: proxy.stats.get("listener.downstream_cx_overflow") == 2)
            with session() as s:  # the admin listener has headroom
                assert s.get(f"{proxy.admin_url}/ready", timeout=5).status_code == 200
            held.pop().close()
            assert wait_for(lambda: proxy.limits.open_connections <= 3)
            assert get(proxy.url) == 200
        finally:
            for s in held:
                s.close()
    reached = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    assert len(reached) == 1
    assert proxy.limits.max_connections == 4


# -- the request header timeout ------------------------------------------------------------------


@pytest.fixture
def timed(ratings_mesh, tmp_path):
    with Proxy(ratings_mesh, state_dir=tmp_path, request_headers_timeout=0.5) as proxy:
        yield proxy


def read_all(s: socket.socket, within: float) -> bytes:
    s.settimeout(within)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_a_client_that_sends_nothing_gets_408(timed):
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", timed.port), timeout=5) as s:
        answer = read_all(s, 5)
    took = time.monotonic() - t0
    assert answer == REQUEST_HEADER_TIMEOUT
    assert 0.4 <= took < 4, took


def test_a_slowloris_client_gets_408_within_the_timeout(timed):
    head = REQUEST + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    t0 = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", timed.port), timeout=5) as s:
        s.settimeout(0.05)
        answer = b""
        while time.monotonic() - t0 < 5 and sent < len(head):  # one byte every 50 ms
            try:
                s.sendall(head[sent : sent + 1])
            except OSError:
                break
            sent += 1
            with contextlib.suppress(TimeoutError):
                answer += s.recv(65536)
            if answer:
                break
        answer += read_all(s, 3)
    took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:80]
    assert sent < len(head)  # cut off before the head was complete
    assert took < 4, took
    assert timed.stats["http.downstream_rq_header_timeout"] >= 1


def test_a_head_in_pieces_within_the_timeout_is_served(timed):
    with socket.create_connection(("127.0.0.1", timed.port), timeout=5) as s:
        for piece in (
            b"GET http://ratings:9080/h HT",
            b"TP/1.1\r\nHost: rat",
            b"ings:9080\r\n\r\n",
        ):
            s.sendall(piece)
            pause(0.1)
        assert read_response_head(s).startswith(b"HTTP/1.1 200 ")


def test_an_idle_kept_alive_connection_is_not_cut_between_requests(timed):
    with socket.create_connection(("127.0.0.1", timed.port), timeout=5) as s:
        s.sendall(REQUEST + b"\r\n")
        assert read_response_head(s).startswith(b"HTTP/1.1 200 ")
        pause(1.2)  # longer than the header timeout, between requests: Envoy's idle timeout
        s.sendall(REQUEST + b"\r\n")
        assert read_response_head(s).startswith(b"HTTP/1.1 200 ")


def test_a_tls_client_idle_after_its_handshake_is_not_sent_a_raw_408(timed):
    """The timer for clients that send nothing stops at their first byte, whatever the
    protocol: a TLS client (HTTPS to the proxy itself) idle after its handshake must not get
    408 bytes written into its TLS stream."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", timed.port), timeout=5) as raw,
        tls.wrap_socket(raw, server_hostname="ratings") as s,
    ):
        pause(1.2)  # past the header timeout, with no HTTP byte sent yet
        s.sendall(REQUEST + b"\r\n")
        assert read_response_head(s).startswith(b"HTTP/1.1 200 ")


def test_a_408_from_the_codec_leaves_no_record(timed):
    """A 408 from the codec is not a request the proxy handled: no record, no access-log
    line (Envoy logs one; chaoskit's records start when mitmproxy has a request)."""
    before = len(timed.records)
    with socket.create_connection(("127.0.0.1", timed.port), timeout=5) as s:
        assert read_all(s, 5) == REQUEST_HEADER_TIMEOUT
    assert len(timed.records) == before


def test_proxy_rejects_bad_limits(ratings_mesh, tmp_path):
    with pytest.raises(ValueError, match="max_connections"):
        Proxy(ratings_mesh, state_dir=tmp_path, max_connections=0)
    with pytest.raises(ValueError, match="request_headers_timeout"):
        Proxy(ratings_mesh, state_dir=tmp_path, request_headers_timeout=-1)


def test_cli_flags():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_proxy.register(sub)
    args = parser.parse_args(["proxy", "-f", "x.yaml"])
    assert args.max_connections is None
    assert args.request_headers_timeout == 10.0
    args = parser.parse_args(
        ["proxy", "-f", "x", "--max-connections", "500", "--request-headers-timeout", "250ms"]
    )
    assert (args.max_connections, args.request_headers_timeout) == (500, 0.25)
    assert (
        parser.parse_args(
            ["proxy", "-f", "x", "--request-headers-timeout", "0"]
        ).request_headers_timeout
        == 0
    )
    for bad in (["--max-connections", "0"], ["--max-connections", "many"],
                ["--request-headers-timeout", "soon"], ["--request-headers-timeout", "-1s"]):  # fmt: skip
        with pytest.raises(SystemExit):
            parser.parse_args(["proxy", "-f", "x", *bad])
