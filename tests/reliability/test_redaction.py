"""Credentials never reach what chaoskit writes: ``Authorization``, ``Cookie`` and
``Proxy-Authorization`` values and URL passwords nowhere (records, access logs, journals, HTML
reports, JUnit files); API-key, token, secret and signature headers and query parameters
(chaoskit.redaction's table) not in journals, reports, JUnit files and access logs."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import textwrap

import pytest

from chaoskit import accesslog
from chaoskit.experiment.journal import Check, Journal, Phase, Sample, StepResult
from chaoskit.redaction import (
    REDACTED,
    is_credential,
    redact_query,
    redact_text,
    redact_url,
    redact_yaml,
)
from chaoskit.testing.upstream import free_port
from tests.builders import service_entry
from tests.reliability.conftest import jsonl, session
from tests.soak.soak import ProxyProcess

REGISTRY_ONLY = textwrap.dedent("""\
    apiVersion: chaoskit.dev/v1alpha1
    kind: MeshConfig
    metadata: {name: mesh}
    spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
    """)


def send_secrets(port: int) -> None:
    """Every way a credential can arrive: headers, proxy credentials, user info in Host."""
    with session(f"http://alice:SECRET-PROXY-PASSWORD@127.0.0.1:{port}") as s:
        r = s.get(
            "http://ratings:9080/page?x=1",
            headers={"Authorization": "Bearer SECRET-BEARER", "Cookie": "sid=SECRET-COOKIE"},
            timeout=10,
        )
        assert r.status_code == 200
    raw = (
        b"GET http://ratings:9080/raw HTTP/1.1\r\nHost: bob:SECRET-HOST-PASSWORD@ratings:9080\r\n"
        b"Proxy-Authorization: Basic "
        + base64.b64encode(b"bob:SECRET-BASIC")
        + b"\r\nCookie: SECRET-COOKIE-2\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(raw)
        while c.recv(65536):
            pass


def no_secret(text: str) -> bool:
    return "secret-" not in text.lower()  # every planted credential starts SECRET-


def test_records_and_access_log_lines_never_hold_credentials(mesh, upstreams):
    mesh.apply(REGISTRY_ONLY)
    send_secrets(mesh.port)
    records = mesh.records
    assert len(records) == 2
    for record in records:
        for text in (
            repr(record), json.dumps(record.to_dict()), accesslog.format_text(record),
            accesslog.format_json(record),
        ):  # fmt: skip
            assert no_secret(text), text
    by_path = {r.path: r for r in records}
    assert by_path["/page?x=1"].source == "alice"  # the user name is the caller's identity
    assert by_path["/raw"].authority == "ratings:9080"  # user info dropped
    # what the upstream gets is the application's business: its own headers pass, the
    # proxy's credentials never do
    (received,) = [r for r in upstreams["ratings"].requests if r.path == "/page?x=1"]
    assert received.headers["authorization"] == "Bearer SECRET-BEARER"
    assert "proxy-authorization" not in received.headers


def test_the_cli_access_log_and_stderr_never_hold_credentials(upstreams, tmp_path):
    from tests.reliability.conftest import service

    (tmp_path / "mesh.yaml").write_text(
        service("ratings", upstreams["ratings"].port) + "---\n" + REGISTRY_ONLY
    )
    log = tmp_path / "access.jsonl"
    with ProxyProcess([tmp_path / "mesh.yaml"], tmp_path / "state", access_log=log) as proxy:
        proxy.wait_ready()
        send_secrets(proxy.port)
        with session(f"http://127.0.0.1:{proxy.port}") as s:  # a token in the query string
            r = s.get("http://ratings:9080/q?page=2&access_token=SECRET-QUERY", timeout=10)
            assert r.status_code == 200
        proxy.stop()
    lines = jsonl(log)
    assert len(lines) == 3
    assert no_secret(log.read_text())
    assert lines[2]["path"] == "/q?page=2&access_token=<redacted>"
    assert no_secret("\n".join(proxy.stderr.snapshot() + proxy.stdout.snapshot()))


def experiment(tmp_path, port: int) -> str:
    dead = free_port()
    path = tmp_path / "creds.yaml"
    path.write_text(
        service_entry("web", port)
        + "---\n"
        + textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: web}}
            spec:
              hosts: [web]
              http:
              - match: [{{headers: {{cookie: {{exact: "sid=SECRET-VS-COOKIE"}}}}}}]
                route: [{{destination: {{host: web}}}}]
                headers:
                  request:
                    set:
                      Authorization: Bearer SECRET-VS-HEADER
                      x-amz-security-token: SECRET-VS-AMZ
              - match: [{{queryParams: {{access_token: {{exact: SECRET-VS-QUERY}}, key: {{exact: SECRET-VS-KEY}}}}}}]
                route: [{{destination: {{host: web}}}}]
              - route: [{{destination: {{host: web}}}}]
            ---
            apiVersion: chaoskit.dev/v1alpha1
            kind: Experiment
            metadata: {{name: creds}}
            spec:
              traffic:
                requests: 4
                targets:
                - name: web
                  url: "http://web/"
                  headers:
                    Authorization: "Bearer SECRET-TRAFFIC"
                    Cookie: sid=SECRET-VS-COOKIE
                - url: "http://web/items?api_key=SECRET-QUERY-TRAFFIC&page=1"
                  headers: {{X-Api-Key: SECRET-API-KEY, X-Auth-Token: SECRET-AUTH-TOKEN}}
              hypothesis:
                successRate: 1
                probes:
                - name: behind basic auth
                  request:
                    url: "http://probe:SECRET-URL-PASSWORD@127.0.0.1:{dead}/"
                    via: direct
                    headers: {{proxy-authorization: Basic SECRET-PROBE}}
                  expect: {{status: 200}}
            """)
    )
    return str(path)


def test_journals_reports_and_junit_never_hold_credentials(tmp_path, upstreams):
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "chaoskit", "run", experiment(tmp_path, upstreams["v1"].port),
         "--seed", "1", "--journal", str(out / "j.json"), "--report", str(out / "r.html"),
         "--junit", str(out / "j.xml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1, 4), result.stdout + result.stderr  # 4: not steady
    for name in ("j.json", "r.html", "j.xml"):
        text = (out / name).read_text()
        assert no_secret(text), (name, [line for line in text.splitlines() if "SECRET" in line])
    journal = json.loads((out / "j.json").read_text())
    config = "\n".join(journal["config"].values())
    assert REDACTED in config and "Bearer" not in config
    assert "probe:<redacted>@127.0.0.1" in config  # the user name stays, the password goes
    assert no_secret(result.stdout + result.stderr)


# -- the redaction rules themselves ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("headers: {authorization: Bearer x, x-ok: fine}\n",
         "headers: {authorization: <redacted>, x-ok: fine}\n"),
        ('headers:\n  Cookie: "a=1; b=2"\n  x-ok: fine\n',
         "headers:\n  Cookie: <redacted>\n  x-ok: fine\n"),
        ("match:\n- headers:\n    authorization: {exact: tok, }\n",
         "match:\n- headers:\n    authorization: {exact: <redacted>, }\n"),
        ("h:\n  proxy-authorization: |\n    Basic eA==\n  next: 1\n",
         "h:\n  proxy-authorization: <redacted>\n  next: 1\n"),
        ("h:\n  set-cookie: &c anchored\n  copy: *c\n", "h:\n  set-cookie: &c <redacted>\n  copy: *c\n"),
        ("url: http://u:pw@h:1/p  # comment\n", "url: http://u:<redacted>@h:1/p  # comment\n"),
        ('{"headers": {"authorization": "Bearer x"}}', '{"headers": {"authorization": <redacted>}}'),
        ("consistentHash: {httpCookie: {name: sid}, httpHeaderName: authorization}\n",
         "consistentHash: {httpCookie: {name: sid}, httpHeaderName: authorization}\n"),
        # API keys, tokens, secrets, signatures, by any spelling of their names
        ("headers: {X-API-Key: k1, x_auth_token: t1, X-Amz-Security-Token: t2, x-ok: fine}\n",
         "headers: {X-API-Key: <redacted>, x_auth_token: <redacted>, "
         "X-Amz-Security-Token: <redacted>, x-ok: fine}\n"),
        ("env: {CLIENT_SECRET: s, DB_PASSWORD: p, HOME: /root}\n",
         "env: {CLIENT_SECRET: <redacted>, DB_PASSWORD: <redacted>, HOME: /root}\n"),
        # query parameters: in a match (where "key" is Google's API key) and in URLs
        ("match: [{queryParams: {key: {exact: k}, page: {exact: '1'}}}]\n",
         "match: [{queryParams: {key: {exact: <redacted>}, page: {exact: '1'}}}]\n"),
        ('url: "http://web/?api_key=k&page=2"\nkey: plain\n',
         'url: "http://web/?api_key=<redacted>&page=2"\nkey: plain\n'),
    ],
)  # fmt: skip
def test_redact_yaml(text, expected):
    assert redact_yaml(text) == expected
    assert redact_yaml(expected) == expected  # idempotent


def test_redact_free_text_and_urls():
    assert redact_text("Authorization: Bearer abc\nok") == "Authorization: <redacted>\nok"
    assert redact_text("{'cookie': 'a=b', 'x': 1}") == "{'cookie': '<redacted>', 'x': 1}"
    assert redact_text("fetching https://me:pw@host/x failed") == (
        "fetching https://me:<redacted>@host/x failed"
    )
    assert redact_url("http://me@host/") == "http://me@host/"  # no password, nothing to hide
    assert redact_text("no credentials here: 200 OK") == "no credentials here: 200 OK"


def test_a_journal_is_redacted_whenever_it_is_written():
    j = Journal("e", "t", "f.yaml", 1, "2026-01-01T00:00:00+00:00", {})
    j.config = {"f.yaml": "headers: {authorization: Bearer SECRET-1}\n"}
    j.phases = [Phase("method", 0.0, checks=[Check("method", "probe", "probe", "200",
                                                   "no answer", False,
                                                   "GET http://u:SECRET-2@h/ failed")],
                      notes=["Cookie: SECRET-3"])]  # fmt: skip
    j.rollbacks = [StepResult("cleanup", False, "authorization=SECRET-4")]
    j.error = "https://a:SECRET-5@b/"
    assert no_secret(j.to_json())
    again = Journal.from_dict(json.loads(j.to_json()))
    assert again.to_json() == j.to_json()
    assert "SECRET-1" in j.config["f.yaml"]  # the object itself is left alone


@pytest.mark.parametrize(
    ("name", "header", "query"),
    [
        ("Authorization", True, True), ("X-Api-Key", True, True), ("api_key", True, True),
        ("apikey", True, True), ("x-goog-api-key", True, True), ("X-Auth-Token", True, True),
        ("access_token", True, True), ("x-amz-security-token", True, True),
        ("client_secret", True, True), ("X-Hub-Signature-256", True, True),
        ("x-amz-signature", True, True), ("password", True, True), ("JSESSIONID", True, True),
        ("key", False, True), ("sig", False, True), ("sid", False, True),
        ("x-request-id", False, False), ("author", False, False), ("page", False, False),
        ("keyboard", False, False), ("tokenizer", False, False), ("user-agent", False, False),
    ],
)  # fmt: skip
def test_the_credential_table(name, header, query):
    assert is_credential(name) is header
    assert is_credential(name, query=True) is query


def test_query_parameters_are_redacted_in_urls_paths_and_free_text():
    assert redact_query("/cb?code=1&access_token=a.b.c&page=2#top") == (
        "/cb?code=1&access_token=<redacted>&page=2#top"
    )
    assert redact_query("/s3/o?X-Amz-Credential=AK&X-Amz-Signature=ff&X-Amz-Date=1") == (
        "/s3/o?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&X-Amz-Date=1"
    )
    assert (
        redact_query("/maps?key=AIza&sig=x%3D&q=rome")
        == "/maps?key=<redacted>&sig=<redacted>&q=rome"
    )
    assert redact_query("/a;jsessionid=ABC?x=1") == "/a;jsessionid=<redacted>?x=1"
    assert redact_query("/p?api%5Fkey=k") == "/p?api%5Fkey=<redacted>"  # percent-encoded name
    assert redact_query("/p?author=bob&keyboard=us&token=") == "/p?author=bob&keyboard=us&token="
    # a requests error names the path; a traffic target is named "GET <url>"
    assert redact_text("Max retries exceeded with url: /?token=abc (Caused by X)") == (
        "Max retries exceeded with url: /?token=<redacted> (Caused by X)"
    )
    assert redact_text("x-api-key: abc\nX-Auth-Token=def\nduplicate key: k") == (
        "x-api-key: <redacted>\nX-Auth-Token=<redacted>\nduplicate key: k"
    )
    for text in ("/cb?access_token=<redacted>", "x-api-key: <redacted>"):
        assert redact_text(text) == text  # idempotent


def test_a_journal_redacts_the_query_of_sample_targets_and_check_names():
    j = Journal("e", "t", "f.yaml", 1, "2026-01-01T00:00:00+00:00", {})
    j.samples = [Sample(0.1, "method", "GET http://web/?token=SECRET-T&p=1", 200, 0.01)] * 3
    j.phases = [Phase("method", 0.0, checks=[Check("method", "probe /?sig=SECRET-S", "probe",
                                                   "200", "200", True)])]  # fmt: skip
    text = j.to_json()
    assert no_secret(text)
    assert "GET http://web/?token=<redacted>&p=1" in text
