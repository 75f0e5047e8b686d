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
from tests.builders import service_entry
from tests.files import OTHER_UID, as_root, mode
from tests.reliability.conftest import buffered, healthy, session
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


def test_the_admin_refuses_dns_rebinding_and_cross_site_posts_but_serves_curl(proxy):
    """A web page can make a browser talk to 127.0.0.1: through a rebound name (refused on
    ``Host``) or with a cross-site POST (refused on ``Origin``/``Sec-Fetch-Site``)."""
    admin = proxy.admin_url
    port = admin.rsplit(":", 1)[1]
    curl = {"User-Agent": "curl/8.5.0", "Accept": "*/*"}
    with session() as s:
        r = s.get(f"{admin}/config_dump", headers={**curl, "Host": f"rebind.evil.test:{port}"},
                  timeout=5)  # fmt: skip
        assert r.status_code == 403 and "DNS rebinding" in r.text
        r = s.get(f"{admin}/ready", headers=curl, timeout=5)
        assert (r.status_code, r.text) == (200, "LIVE\n")
        r = s.get(f"http://localhost:{port}/ready", headers=curl, timeout=5)
        assert (r.status_code, r.text) == (200, "LIVE\n")
        browser = {"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site",
                   "Content-Type": "text/plain"}  # fmt: skip
        r = s.post(f"{admin}/reset_counters", headers=browser, data="x", timeout=5)
        assert r.status_code == 403 and "cross-site" in r.text
        r = s.post(f"{admin}/reset_counters", headers=curl, timeout=5)
        assert (r.status_code, r.text) == (200, "OK\n")


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


def refused_proxy(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """``chaoskit proxy`` that must refuse to start: exit 2 with a message, no traceback."""
    (tmp_path / "mesh.yaml").write_text("")
    try:
        result = chaoskit("proxy", "-f", str(tmp_path / "mesh.yaml"), "--listen", "127.0.0.1:0",
                          "--admin", "127.0.0.1:0", *args)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the proxy started instead of refusing")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "ready" not in result.stdout
    return result


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "fifo"])
def test_the_access_log_is_never_written_through_a_link_or_into_a_fifo(kind, tmp_path, victim):
    log = tmp_path / "access.log"
    if kind == "symlink":
        log.symlink_to(victim)
    elif kind == "dangling symlink":
        log.symlink_to(tmp_path / "planted")
    else:
        os.mkfifo(log)  # opening it for writing used to block until someone read it
    result = refused_proxy(tmp_path, "--state-dir", str(tmp_path / "state"),
                           "--access-log", str(log))  # fmt: skip
    assert f"chaoskit proxy: --access-log {log}: is a" in result.stderr
    assert victim.read_text() == "export PATH=/usr/bin\n" and mode(victim) == 0o644
    assert not (tmp_path / "planted").exists()


def test_an_existing_access_log_becomes_owner_only_and_is_appended_to(tmp_path):
    (tmp_path / "mesh.yaml").write_text("")
    log = tmp_path / "access.log"
    log.write_text('{"earlier": 1}\n')
    log.chmod(0o644)
    state = tmp_path / "new" / "state"
    old = os.umask(0o022)
    try:
        with ProxyProcess([tmp_path / "mesh.yaml"], state, access_log=log) as p:
            p.wait_ready()
            assert mode(log) == 0o600
    finally:
        os.umask(old)
    assert log.read_text().startswith('{"earlier": 1}\n')
    assert mode(state) == 0o700  # a missing state folder is created owner-only


# -- the state folder ------------------------------------------------------------------------


def test_a_state_folder_others_can_write_is_refused_and_left_alone(tmp_path):
    shared = tmp_path / "tmp"  # like /tmp: 1777, anyone can plant a file or a link
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "someones.txt").write_text("x")
    (shared / "someones.txt").chmod(0o644)
    proxy = Proxy(admin_port=None, state_dir=shared)
    try:
        with pytest.raises(ProxyError, match="mode 1777 lets other users plant files"):
            proxy.start()
    finally:
        proxy.stop()
    result = refused_proxy(tmp_path, "--state-dir", str(shared))
    assert f"chaoskit proxy: refusing the state folder {shared}: mode 1777" in result.stderr
    assert mode(shared) == 0o1777 and mode(shared / "someones.txt") == 0o644
    assert sorted(p.name for p in shared.iterdir()) == ["someones.txt"]


@as_root
def test_a_state_folder_of_another_user_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    result = refused_proxy(tmp_path, "--state-dir", str(theirs))
    assert f"it is owned by uid {OTHER_UID}, not by this user (uid 0)" in result.stderr
    assert list(theirs.iterdir()) == [] and theirs.stat().st_uid == OTHER_UID
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(mine)
    os.lchown(link, OTHER_UID, OTHER_UID)  # their link to a folder of ours: still refused
    result = refused_proxy(tmp_path, "--state-dir", str(link))
    assert "is a symbolic link owned by another user" in result.stderr


def test_a_state_folder_of_ours_keeps_its_mode_and_only_the_ca_files_are_made_private(
    tmp_path, victim
):
    from mitmproxy.certs import CertStore

    state = tmp_path / "certs"  # shared with other tools: 0755, with a file of the user's
    state.mkdir()
    state.chmod(0o755)
    (state / "notes.txt").write_text("mine")
    (state / "notes.txt").chmod(0o644)
    old = os.umask(0o022)
    try:
        CertStore.create_store(state, "mitmproxy", 2048)  # what the first start writes
    finally:
        os.umask(old)
    (state / "mitmproxy-ca-cert.cer").unlink()
    (state / "mitmproxy-ca-cert.cer").symlink_to(victim)  # never followed
    assert mode(state / "mitmproxy-ca-cert.pem") == 0o644
    (tmp_path / "mesh.yaml").write_text("")
    with ProxyProcess([tmp_path / "mesh.yaml"], state) as p:
        p.wait_ready()
    assert mode(state) == 0o755 and mode(state / "notes.txt") == 0o644
    assert mode(victim) == 0o644 and victim.read_text() == "export PATH=/usr/bin\n"
    assert (state / "mitmproxy-ca-cert.cer").is_symlink()
    for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12", "mitmproxy-ca-cert.pem",
                 "mitmproxy-ca-cert.p12", "mitmproxy-dhparam.pem"):  # fmt: skip
        assert mode(state / name) == 0o600, name


# -- whole files: explore's experiment, the pytest plugin's reports ----------------------------


def test_explore_replaces_a_symlink_instead_of_writing_through_it(tmp_path, victim):
    from chaoskit.experiment.explore import write_experiment
    from chaoskit.experiment.runner import load_plan

    path = tmp_path / "web.yaml"
    path.write_text(
        service_entry("web", 1)
        + "---\napiVersion: chaoskit.dev/v1alpha1\nkind: Experiment\nmetadata: {name: web}\n"
        "spec:\n  traffic: {requests: 1, targets: [{url: 'http://web/'}]}\n"
        "  hypothesis: {successRate: 1}\n"
    )
    out = tmp_path / "web.explored.yaml"
    out.symlink_to(victim)
    fault = {"apiVersion": "chaoskit.dev/v1alpha1", "kind": "UpstreamFault",
             "metadata": {"name": "f"}, "spec": {"host": "web", "abort": {"httpStatus": 503}}}  # fmt: skip
    write_experiment(load_plan(path), [fault], 7, out)
    assert victim.read_text() == "export PATH=/usr/bin\n"
    assert not out.is_symlink() and "UpstreamFault" in out.read_text()


def test_pytest_reports_are_owner_only_never_through_a_link_and_hold_no_query_token(
    tmp_path, victim
):
    from chaoskit_pytest.plugin import _write_test_report, report_file_name

    nodeid = "test_x.py::test_a"
    (tmp_path / "tests").mkdir()
    path = tmp_path / "tests" / report_file_name(nodeid)
    path.symlink_to(victim)
    record = {"path": "/pay?amount=1&access_token=SECRET-QUERY", "status": 200}
    _write_test_report(tmp_path, {"nodeid": nodeid, "records": [record]}, {"call": "passed"})
    assert victim.read_text() == "export PATH=/usr/bin\n"
    assert not path.is_symlink() and mode(path) == 0o600
    data = json.loads(path.read_text())
    assert data["records"][0]["path"] == "/pay?amount=1&access_token=<redacted>"


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


def test_a_direct_response_body_cannot_add_headers_to_a_grpc_reply(mesh, client):
    """A gRPC client gets the body in ``grpc-message``, percent-encoded: a newline cannot start
    a header, a non-latin-1 character cannot break the reply, and one content-type."""
    body = "down\r\nx-injected: yes\n100% \u20ac"
    mesh.apply(
        textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: ratings}}
            spec:
              hosts: [ratings]
              http: [{{directResponse: {{status: 503, body: {{string: {json.dumps(body)}}}}}}}]
            """)
    )
    r = client.post("http://ratings:9080/pkg.Svc/Get", data=b"\0\0\0\0\0",
                    headers={"content-type": "application/grpc", "te": "trailers"})  # fmt: skip
    assert r.status_code == 200 and r.headers["grpc-status"] == "14"
    assert r.headers["grpc-message"] == "down%0D%0Ax-injected: yes%0A100%25 %E2%82%AC"
    assert "x-injected" not in r.headers
    assert r.raw.headers.getlist("content-type") == ["application/grpc"]
    mesh.apply()  # the base mesh again: the proxy still routes
    assert healthy(mesh)


def test_local_replies_are_envoys_texts_only(mesh, client):
    """Every local reply body is one of Envoy's fixed texts (or chaoskit's, equally fixed):
    never a path, a resource name, an address or an exception."""
    fixed = {
        "", "no healthy upstream", "upstream request timeout", "fault filter abort",
        "request loop detected", "Internal Server Error", "Bad Request",
        "Request Header Fields Too Large",
    }  # fmt: skip
    with buffered(mesh):  # a body too large to buffer gets its local reply
        too_large = client.get("http://bad:9080/huge-announced", timeout=30).text
    bodies = [
        client.get("http://dead:9080/").text,
        client.get("http://bad:9080/close").text,
        client.get("http://bad:9080/malformed").text,
        too_large,
        client.get(f"http://127.0.0.1:{mesh.port}/").text,
        client.get("http://ratings:9080/", headers={"x-a": "a\x01b"}).text,
    ]
    for body in bodies:
        envoy_reset = body.startswith(
            "upstream connect error or disconnect/reset before headers. reset reason: "
        )
        assert body in fixed or envoy_reset, body
        assert "127.0.0.1" not in body and "Error:" not in body and ".yaml" not in body
