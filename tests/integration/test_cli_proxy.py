"""`chaoskit proxy` and `mitmdump -s` as a user runs them: subprocesses, real ports."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from chaoskit.proxy import webui
from chaoskit.testing import TcpEcho, Upstream
from chaoskit.testing.upstream import free_port
from tests.builders import service_entry

BIN = Path(sys.executable).parent


def service(up: Upstream) -> str:
    return service_entry("web", up.port)


class Lines:
    """Collects a subprocess stream line by line, so tests can wait for one (bounded)."""

    def __init__(self, stream) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.q.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(
            f"no line containing {text!r} within {timeout}s; saw:\n" + "\n".join(self.seen)
        )


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], Lines, Lines]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CHAOSKIT_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return proc, Lines(proc.stdout), Lines(proc.stderr)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_chaoskit_proxy_end_to_end(tmp_path):
    with Upstream("web") as up:
        mesh = tmp_path / "mesh"
        mesh.mkdir()
        (mesh / "web.yaml").write_text(service(up))
        listen, admin = free_port(), free_port()
        proc, out, err = start(
            [
                str(BIN / "chaoskit"),
                "proxy",
                "-f",
                str(mesh),
                "--listen",
                f"127.0.0.1:{listen}",
                "--admin",
                f"127.0.0.1:{admin}",
                "--seed",
                "3",
            ],
            tmp_path,
        )
        try:
            ready = out.wait_for("chaoskit proxy ready")
            assert f"listen=http://127.0.0.1:{listen}" in ready and "seed=3" in ready
            proxies = {"http": f"http://127.0.0.1:{listen}"}
            r = requests.get("http://web/hello", proxies=proxies, timeout=10)
            assert r.status_code == 200
            line = out.wait_for('"GET /hello HTTP/1.1" 200')
            assert (
                f'"127.0.0.1:{up.port}"' in line
                and "outbound|80||web.default.svc.cluster.local" in line
            )

            # an invalid change is reported and the old configuration keeps serving
            (mesh / "vs.yaml").write_text(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: web}\nspec: {hosts: [web], http: [{timeout: 0s}]}\n"
            )
            err.wait_for("change rejected")
            assert requests.get("http://web/", proxies=proxies, timeout=10).status_code == 200

            # a valid change is swapped in
            (mesh / "vs.yaml").write_text(
                textwrap.dedent("""\
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: web}
                spec:
                  hosts: [web]
                  http: [{directResponse: {status: 418, body: {string: teapot}}}]
                """)
            )
            err.wait_for("reloaded")
            r = requests.get("http://web/", proxies=proxies, timeout=10)
            assert (r.status_code, r.text) == (418, "teapot")

            # a VirtualService applied before its DestinationRule is accepted, as Istio does
            # (a warning, IST0101): its requests get 503 NC until the subset is defined
            (mesh / "vs.yaml").write_text(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: web}\nspec:\n  hosts: [web]\n"
                "  http: [{route: [{destination: {host: web, subset: canary}}]}]\n"
            )
            err.wait_for("reloaded")
            r = requests.get("http://web/nc", proxies=proxies, timeout=10)
            assert (r.status_code, r.content) == (503, b"")
            assert "cluster_not_found" in out.wait_for('"GET /nc HTTP/1.1" 503 NC ')
            (mesh / "dr.yaml").write_text(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata: {name: web}\nspec: {host: web, subsets: [{name: canary}]}\n"
            )
            err.wait_for("reloaded")
            assert requests.get("http://web/nc", proxies=proxies, timeout=10).status_code == 200
            assert requests.get(f"http://127.0.0.1:{admin}/ready", timeout=5).status_code == 200
        finally:
            stop(proc)
        assert proc.returncode == 0
        for port in (listen, admin):  # ports are free again (a server may re-bind them at once)
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen()
        assert "Traceback" not in "\n".join(err.seen)


def test_chaoskit_proxy_refuses_bad_config_and_public_admin(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {}\n"
    )
    r = subprocess.run(
        [str(BIN / "chaoskit"), "proxy", "-f", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSKIT_HOME": str(tmp_path)},
        check=False,
    )
    assert (
        r.returncode == 2 and "configuration rejected" in r.stderr and "Traceback" not in r.stderr
    )
    r = subprocess.run(
        [str(BIN / "chaoskit"), "proxy", "-f", str(bad), "--admin", "0.0.0.0:15000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "loopback" in r.stderr


@pytest.mark.skipif(not (BIN / "mitmdump").exists(), reason="mitmdump not installed")
def test_same_answers_under_mitmdump(tmp_path):
    from chaoskit.proxy import script

    with Upstream("web") as up:
        (tmp_path / "mesh.yaml").write_text(
            service(up)
            + "---\n"
            + textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: web}
            spec:
              hosts: [web]
              http:
              - match: [{uri: {prefix: /teapot}}]
                directResponse: {status: 418}
              - route: [{destination: {host: web}}]
            """)
        )
        port = free_port()
        proc, _out, _err = start(
            [
                str(BIN / "mitmdump"),
                "-q",
                "--listen-host",
                "127.0.0.1",
                "-p",
                str(port),
                "--set",
                f"confdir={tmp_path / 'mitm'}",
                "-s",
                script.__file__,
                "--set",
                f"chaoskit_config={tmp_path / 'mesh.yaml'}",
                "--set",
                "chaoskit_seed=5",
            ],
            tmp_path,
        )
        try:
            proxies = {"http": f"http://127.0.0.1:{port}"}
            deadline = time.monotonic() + 30
            while True:
                try:
                    r = requests.get("http://web/x", proxies=proxies, timeout=5)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    threading.Event().wait(0.1)
            assert r.status_code == 200 and r.json()["upstream"] == "web"
            assert requests.get("http://web/teapot", proxies=proxies, timeout=5).status_code == 418
            r = requests.get("http://nowhere.invalid/", proxies=proxies, timeout=15)
            assert r.status_code == 503  # passthrough to an unresolvable host: connection failure
        finally:
            stop(proc)


@pytest.mark.skipif(not webui.web_ui_is_safe(), reason="mitmproxy < 11.1.2: --web is refused")
def test_web_ui_shows_annotated_flows(tmp_path):
    with Upstream("web") as up:
        (tmp_path / "web.yaml").write_text(service(up))
        listen, admin, web = free_port(), free_port(), free_port()
        proc, out, _err = start(
            [str(BIN / "chaoskit"), "proxy", "-f", str(tmp_path / "web.yaml"), "--listen",
             f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}", "--web", str(web)], tmp_path)  # fmt: skip
        try:
            ready = out.wait_for("chaoskit proxy ready")
            match = re.search(rf"web=(http://127\.0\.0\.1:{web}/\?token=(\w+))", ready)
            assert match, ready
            token = match.group(2)
            proxies = {"http": f"http://127.0.0.1:{listen}"}
            r = requests.get("http://web/x", proxies=proxies, timeout=10)
            assert r.status_code == 200
            flows_url = f"http://127.0.0.1:{web}/flows"
            # The UI needs its token (CVE-2025-23217: it had none) ...
            assert requests.get(flows_url, timeout=10).status_code == 403
            flows = requests.get(flows_url, params={"token": token}, timeout=10).json()
            assert any(
                "cluster outbound|80||web.default.svc.cluster.local" in f["comment"] for f in flows
            )
            # ... and is never reachable through the proxy, token or not, however it is spelled.
            for host in ("127.0.0.1", "localhost", "0.0.0.0", "0x7f000001", "[::ffff:127.0.0.1]"):
                through = requests.get(
                    f"http://{host}:{web}/flows", params={"token": token}, proxies=proxies,
                    timeout=10,
                )  # fmt: skip
                assert (through.status_code, through.text) == (502, "request loop detected"), host
        finally:
            stop(proc)


@pytest.mark.skipif(webui.web_ui_is_safe(), reason="this mitmproxy's web UI needs its token")
def test_web_ui_is_refused_on_a_mitmproxy_whose_ui_has_no_authentication(tmp_path):
    # Python 3.11 can only install mitmproxy 11.0.2 (CVE-2025-23217): exit 2, and why.
    (tmp_path / "web.yaml").write_text(service_entry("web", 9))
    result = subprocess.run(
        [str(BIN / "chaoskit"), "proxy", "-f", str(tmp_path / "web.yaml"), "--web", "0"],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "CVE-2025-23217" in result.stderr and "Traceback" not in result.stderr


def test_chaoskit_seed_makes_load_balancing_reproducible_under_mitmdump(tmp_path):
    from chaoskit.proxy import script

    with contextlib.ExitStack() as stack:
        ups = [stack.enter_context(Upstream(f"e{i}")) for i in range(3)]
        endpoints = ", ".join(
            f"{{address: 127.0.0.1, ports: {{http: {up.port}}}, labels: {{n: e{i}}}}}"
            for i, up in enumerate(ups)
        )
        (tmp_path / "mesh.yaml").write_text(
            textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: web}}
            spec:
              hosts: [web]
              ports: [{{number: 80, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{endpoints}]
            ---
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {{name: web}}
            spec:
              host: web
              trafficPolicy: {{loadBalancer: {{simple: RANDOM}}}}
            """)
        )

        def picks(seed: str) -> list[str]:
            port = free_port()
            proc, _out, _err = start(
                [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
                 "--set", f"confdir={tmp_path / 'mitm'}", "-s", script.__file__,
                 "--set", f"chaoskit_config={tmp_path / 'mesh.yaml'}",
                 "--set", f"chaoskit_seed={seed}"],
                tmp_path,
            )  # fmt: skip
            proxies = {"http": f"http://127.0.0.1:{port}"}
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        first = requests.get("http://web/", proxies=proxies, timeout=5)
                        break
                    except requests.ConnectionError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise
                        threading.Event().wait(0.1)
                rest = [requests.get("http://web/", proxies=proxies, timeout=5) for _ in range(19)]
                return [r.json()["upstream"] for r in [first, *rest]]
            finally:
                stop(proc)

        a, b, c = picks("5"), picks("5"), picks("6")
    assert a == b  # same seed: the same endpoint for every request
    assert len(set(a)) > 1  # and really random picks, not one endpoint
    assert a != c


def gateway_mesh(port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: edge}}
        spec:
          selector: {{istio: ingressgateway}}
          servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: ["*"]}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: edge}}
        spec:
          hosts: ["*"]
          gateways: [edge]
          http: [{{directResponse: {{status: 200, body: {{string: edge}}}}}}]
        """)


def test_gateway_ports_move_from_the_command_line(tmp_path):
    # A Gateway's port as Istio's YAML writes it is taken here (like 80 or 8080 on a laptop):
    # refused with the listener named and the way out; --gateway-port or an offset moves it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "edge.yaml"
        config.write_text(gateway_mesh(port))
        base = [str(BIN / "chaoskit"), "proxy", "-f", str(config), "--admin", "127.0.0.1:0",
                "--listen", f"127.0.0.1:{free_port()}"]  # fmt: skip
        env = {**os.environ, "CHAOSKIT_HOME": str(tmp_path / "state")}
        r = subprocess.run(base, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert r.returncode == 2, r.stderr
        assert f"cannot listen on 127.0.0.1:{port} for a Gateway:" in r.stderr
        assert f"move it with --gateway-port {port}=LOCAL" in r.stderr
        assert "Traceback" not in r.stderr

        target = free_port()
        for flags in (
            ["--gateway-port", f"{port}=0"],
            ["--gateway-port-offset", str(target - port)],
        ):
            proc, out, err = start([*base, *flags], tmp_path)
            try:
                ready = out.wait_for("chaoskit proxy ready")
                moved = re.search(rf"gateways={port}=(\d+) ", ready)
                assert moved is not None, ready
                bound = int(moved.group(1))
                if flags[0] == "--gateway-port-offset":
                    assert bound == target
                r = requests.get(f"http://127.0.0.1:{bound}/", timeout=10)
                assert (r.status_code, r.text) == (200, "edge")
                if flags[0] == "--gateway-port":
                    # a reload that adds a Gateway on a taken port: refused, the rest serves on
                    with socket.socket() as other:
                        other.bind(("127.0.0.1", 0))
                        other.listen()
                        busy = other.getsockname()[1]
                        config.write_text(
                            gateway_mesh(port)
                            + "---\n"
                            + gateway_mesh(busy).replace("edge", "side")
                        )
                        err.wait_for("change rejected")
                        err.wait_for(f"move it with --gateway-port {busy}=LOCAL")
                    r = requests.get(f"http://127.0.0.1:{bound}/", timeout=10)
                    assert (r.status_code, r.text) == (200, "edge")
                    config.write_text(gateway_mesh(port))
            finally:
                stop(proc)


def test_a_taken_forward_proxy_port_is_named_as_such(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "edge.yaml"
        config.write_text(gateway_mesh(free_port()))
        r = subprocess.run(
            [str(BIN / "chaoskit"), "proxy", "-f", str(config), "--listen", f"127.0.0.1:{port}",
             "--admin", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "CHAOSKIT_HOME": str(tmp_path / "state")},
        )  # fmt: skip
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} for the forward proxy:" in r.stderr


def test_workload_listeners_from_the_command_line(tmp_path):
    with Upstream("web") as up:
        config = tmp_path / "mesh.yaml"
        config.write_text(
            service(up) + "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
            "metadata: {name: shop}\nspec: {labels: {app: shop}}\n"
        )
        # the configuration as a positional path, as for validate and run
        base = [str(BIN / "chaoskit"), "proxy", str(config), "--admin", "127.0.0.1:0",
                "--listen", f"127.0.0.1:{free_port()}"]  # fmt: skip
        env = {**os.environ, "CHAOSKIT_HOME": str(tmp_path / "state")}
        r = subprocess.run([str(BIN / "chaoskit"), "proxy"], capture_output=True, text=True,
                           timeout=60, env=env, check=False)  # fmt: skip
        assert r.returncode == 2 and "give the mesh configuration" in r.stderr
        r = subprocess.run([*base, "--workload", "shoop=0"], capture_output=True, text=True,
                           timeout=60, env=env, check=False)  # fmt: skip
        assert r.returncode == 2 and "'shoop'" in r.stderr and 'did you mean "shop"' in r.stderr
        proc, out, _err = start([*base, "--workload", "shop=0"], tmp_path)
        try:
            ready = out.wait_for("chaoskit proxy ready")
            m = re.search(r" workloads=shop=(\d+)", ready)
            assert m is not None, ready
            r2 = requests.get("http://web/", proxies={"http": f"http://127.0.0.1:{m[1]}"},
                              timeout=10)  # fmt: skip
            assert r2.status_code == 200
        finally:
            stop(proc)


def test_an_empty_mesh_passes_through_and_emptying_the_folder_reloads(tmp_path):
    """Istio with no resources is valid: every request passes through (ALLOW_ANY)."""
    with Upstream("web") as up:
        mesh = tmp_path / "mesh"
        mesh.mkdir()
        listen, admin = free_port(), free_port()
        proc, out, err = start(
            [str(BIN / "chaoskit"), "proxy", str(mesh),
             "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"],
            tmp_path,
        )  # fmt: skip
        try:
            out.wait_for("chaoskit proxy ready")
            proxies = {"http": f"http://127.0.0.1:{listen}"}
            direct = f"http://127.0.0.1:{up.port}/"
            assert requests.get(direct, proxies=proxies, timeout=10).status_code == 200
            (mesh / "web.yaml").write_text(service(up))
            err.wait_for("reloaded 1 resources")
            assert requests.get("http://web/", proxies=proxies, timeout=10).status_code == 200
            (mesh / "web.yaml").unlink()
            err.wait_for("reloaded 0 resources")
            assert requests.get(direct, proxies=proxies, timeout=10).status_code == 200
        finally:
            stop(proc)
        assert proc.returncode == 0


def test_chaoskit_proxy_tcp_listener(tmp_path):
    """``--tcp HOST:PORT=0``: the ready line names the listener, a connection through it is
    relayed and logged as a sidecar's TCP proxy logs one; a port the service lacks is refused."""
    with TcpEcho(b"+PONG\r\n") as echo:
        (tmp_path / "redis.yaml").write_text(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: redis}\n"
            "spec:\n  hosts: [redis]\n  ports: [{number: 6379, name: tcp-redis, protocol: TCP}]\n"
            "  resolution: STATIC\n"
            f"  endpoints: [{{address: 127.0.0.1, ports: {{tcp-redis: {echo.port}}}}}]\n"
        )
        args = [str(BIN / "chaoskit"), "proxy", str(tmp_path / "redis.yaml"), "--listen",
                f"127.0.0.1:{free_port()}", "--admin", f"127.0.0.1:{free_port()}"]  # fmt: skip
        proc, out, err = start([*args, "--tcp", "redis:6379=0"], tmp_path)
        try:
            ready = out.wait_for("chaoskit proxy ready")
            port = int(re.search(r" tcp=redis:6379=127\.0\.0\.1:(\d+)", ready)[1])  # type: ignore[index]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"PING\r\n")
                sock.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := sock.recv(100):
                    received += chunk
            assert received == b"+PONG\r\nPING\r\n"
            line = out.wait_for('"- - -" 0 - - - "-" 6 13 ')
            assert f'"127.0.0.1:{echo.port}" outbound|6379||redis.default.svc.cluster.local' in line
        finally:
            stop(proc)
        assert proc.returncode == 0 and "Traceback" not in "\n".join(err.seen)
        refused = subprocess.run(
            [*args, "--tcp", "redis:6380=0"], capture_output=True, text=True, timeout=60,
            env={**os.environ, "CHAOSKIT_HOME": str(tmp_path)}, check=False,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "TCP listener redis:6380: redis has no port 6380 (ports: 6379/TCP)" in refused.stderr
