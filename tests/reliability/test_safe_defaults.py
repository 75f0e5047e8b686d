"""Safe defaults: loopback listeners (and a loud warning otherwise), an admin listener that
never leaves loopback, YAML that cannot run code, owner-only state files, and error bodies that
tell a client nothing about chaoskit's configuration or code.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from chaoskit.errors import ProxyError
from chaoskit.proxy.api import Proxy
from tests.reliability.conftest import healthy, session
from tests.soak.soak import ProxyProcess


def listening(port: int) -> set[str]:
    """The addresses a TCP port listens on, from /proc/net/tcp{,6} (state 0A = LISTEN)."""
    out: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:
                continue
            if width == 8:
                out.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
            else:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                out.add(socket.inet_ntop(socket.AF_INET6, words))
    return out


def chaoskit(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoskit", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


# -- listeners -----------------------------------------------------------------------------


def test_every_listener_binds_loopback_by_default(proxy):
    bound = proxy.runtime.bound
    assert bound and {host for host, _ in bound.values()} == {"127.0.0.1"}
    for _, port in bound.values():
        assert listening(port) == {"127.0.0.1"}


def test_the_cli_warns_loudly_and_keeps_admin_on_loopback(tmp_path, upstreams):
    (tmp_path / "mesh.yaml").write_text(
        textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: ratings}}
            spec:
              hosts: [ratings]
              ports: [{{number: 9080, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{{address: 127.0.0.1, ports: {{http: {upstreams["ratings"].port}}}}}]
            """)
    )
    with ProxyProcess(
        [tmp_path / "mesh.yaml"], tmp_path / "state", extra=("--listen", "0.0.0.0:0")
    ) as proxy:
        warning = proxy.stderr.wait_for("WARNING", timeout=30)
        assert "0.0.0.0" in warning and "anyone who can reach" in warning
        proxy.wait_ready()
        admin_port = int(proxy.admin_url.rsplit(":", 1)[1])
        assert listening(proxy.port) == {"0.0.0.0"}
        assert listening(admin_port) == {"127.0.0.1"}  # the admin never follows --listen
        with session(f"http://127.0.0.1:{proxy.port}") as s:
            assert s.get("http://ratings:9080/", timeout=10).status_code == 200
    stderr = "\n".join(proxy.stderr.snapshot())
    assert "ExposedListenerWarning" not in stderr  # said once, by the CLI


def test_the_python_api_warns_when_it_binds_beyond_loopback(tmp_path):
    script = textwrap.dedent(f"""\
        import warnings
        from chaoskit.proxy.api import Proxy, ExposedListenerWarning
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Proxy(host="0.0.0.0", admin_port=None, state_dir={str(tmp_path)!r}):
                pass
            with Proxy(admin_port=None, state_dir={str(tmp_path)!r}):
                pass
        print([(w.category.__name__, str(w.message)) for w in caught])
        """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    (warning,) = eval(result.stdout)  # one warning: the loopback proxy gave none
    assert warning[0] == "ExposedListenerWarning" and "0.0.0.0" in warning[1]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com"])
def test_the_admin_listener_refuses_non_loopback_addresses(host, tmp_path):
    with pytest.raises(ProxyError, match="must stay on loopback"):
        Proxy(admin_host=host, state_dir=tmp_path)
    address = f"[{host}]:0" if ":" in host else f"{host}:0"
    result = chaoskit("proxy", "-f", str(tmp_path), "--admin", address)
    assert result.returncode == 2
    assert "the admin listener must stay on loopback" in result.stderr


# -- YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
    ],
)
def test_yaml_is_loaded_safely_by_every_command(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        f"spec:\n  hosts: {payload.format(marker=marker)}\n"
    )
    for args in (["validate", str(evil)], ["proxy", "-f", str(evil), "--admin", "127.0.0.1:0",
                                             "--listen", "127.0.0.1:0"], ["run", str(evil)]):  # fmt: skip
        result = chaoskit(*args)
        assert result.returncode != 0, (args, result.stdout)
        assert "Traceback" not in result.stderr, result.stderr
        assert not marker.exists()


# -- permissions ---------------------------------------------------------------------------


def test_state_files_are_owner_only(proxy):
    state = proxy.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = list(state.iterdir())
    assert {f.name for f in files} >= {"mitmproxy-ca.pem", "mitmproxy-ca-cert.pem"}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


def test_a_new_access_log_is_owner_only(tmp_path):
    (tmp_path / "mesh.yaml").write_text("")
    log = tmp_path / "access.log"
    old = os.umask(0o022)
    try:
        with ProxyProcess([tmp_path / "mesh.yaml"], tmp_path / "state", access_log=log) as p:
            p.wait_ready()
            assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    for f in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


# -- what clients are told -------------------------------------------------------------------


def test_an_internal_error_tells_the_client_only_a_request_id(mesh, client, caplog):
    secret = "config at /etc/secret-mesh.yaml line 7: token=hunter2"

    async def boom(ex):
        raise RuntimeError(secret)

    original = mesh.pipeline.handle
    mesh.pipeline.handle = boom
    try:
        with caplog.at_level(logging.ERROR, logger="chaoskit"):
            r = client.get("http://ratings:9080/", headers={"x-request-id": "rid-42"})
    finally:
        mesh.pipeline.handle = original
    assert r.status_code == 500
    assert r.headers["x-chaoskit-error"] == "core-error"
    assert r.headers["x-request-id"] == "rid-42"
    assert "rid-42" in r.text
    assert "hunter2" not in r.text and "RuntimeError" not in r.text and "/etc" not in r.text
    assert "hunter2" not in json.dumps(dict(r.headers))
    # the detail is where the operator looks: the log and the record
    assert any("rid-42" in rec.getMessage() and rec.exc_info for rec in caplog.records)
    (record,) = mesh.records
    assert record.details == "chaoskit_internal_error"
    assert any(secret in note for note in record.notes)
    assert healthy(mesh)


def test_local_replies_are_envoys_texts_only(mesh, client):
    """Every local reply body is one of Envoy's fixed texts (or chaoskit's, equally fixed):
    never a path, a resource name, an address or an exception."""
    fixed = {
        "", "no healthy upstream", "upstream request timeout", "fault filter abort",
        "request loop detected", "Internal Server Error", "Bad Request",
        "Request Header Fields Too Large",
    }  # fmt: skip
    bodies = [
        client.get("http://dead:9080/").text,
        client.get("http://bad:9080/close").text,
        client.get("http://bad:9080/malformed").text,
        client.get("http://bad:9080/huge-announced", timeout=30).text,
        client.get(f"http://127.0.0.1:{mesh.port}/").text,
        client.get("http://ratings:9080/", headers={"x-a": "a\x01b"}).text,
    ]
    for body in bodies:
        envoy_reset = body.startswith(
            "upstream connect error or disconnect/reset before headers. reset reason: "
        )
        assert body in fixed or envoy_reset, body
        assert "127.0.0.1" not in body and "Error:" not in body and ".yaml" not in body
