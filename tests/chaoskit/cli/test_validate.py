import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaoskit.cli import main

ROOT = Path(__file__).resolve().parents[3]
BOOKINFO = ROOT / "experiments" / "bookinfo" / "mesh"


def run(capsys, *args):
    code = main(["validate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bookinfo_is_valid(capsys):
    code, out, _ = run(capsys, BOOKINFO)
    assert code == 0
    assert out.strip().splitlines()[-1].startswith("0 errors, 0 warnings in 4 files")


def test_errors_are_listed_with_file_line_and_path(tmp_path, capsys):
    bad = tmp_path / "reviews.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v4}\n"
        "    retries: {attempts: 3, perTrytimeout: 1s}\n"
    )
    code, out, _ = run(capsys, BOOKINFO, bad)
    assert code == 1
    lines = out.strip().splitlines()
    assert (
        f"{bad}:9: error: VirtualService/default/reviews: spec.http[0].retries.perTrytimeout: "
        'unknown field "perTrytimeout"; did you mean "perTryTimeout"?' in lines
    )
    assert any(
        line.startswith(
            f"{bad}:7: warning: VirtualService/default/reviews: "
            "spec.http[0].route[0].destination.subset: subset 'v4'"
        )
        and line.endswith(" [IST0101]")
        for line in lines
    )
    assert lines[-1].startswith("1 error, 1 warning")


MISSING_SUBSET = (
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
    "spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v4}\n"
)


def test_missing_subset_warns_with_istio_code_and_fails_only_strict(tmp_path, capsys):
    """Istio applies a VirtualService before its DestinationRule (503 NC at run time): chaoskit
    warns with IST0101 instead of refusing, and --strict still fails on it."""
    f = tmp_path / "reviews.yaml"
    f.write_text(MISSING_SUBSET)
    code, out, _ = run(capsys, BOOKINFO, f, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True
    assert [(i["severity"], i["code"], i["path"]) for i in data["issues"]] == [
        ("warning", "IST0101", "spec.http[0].route[0].destination.subset")
    ]
    assert run(capsys, BOOKINFO, f, "--strict")[0] == 1


PEER_AUTH = (
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\n"
    "spec: {mtls: {mode: STRICT}}\n---\n"
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\n"
    "spec:\n  host: ratings\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n"
    "  subsets: [{name: v1, labels: {version: v1}}]\n"
)


def test_mutual_tls_is_a_note_that_never_fails(tmp_path, capsys):
    f = tmp_path / "mtls.yaml"
    f.write_text(PEER_AUTH)
    code, out, _ = run(capsys, BOOKINFO, f)
    lines = out.strip().splitlines()
    assert code == 0
    assert lines[0].startswith(
        f"{f}:2: note: kind: PeerAuthentication is accepted but mutual TLS is not emulated"
    )
    assert lines[1].startswith(
        f"{f}:6: note: DestinationRule/default/ratings: spec.trafficPolicy.tls.mode: "
        "ISTIO_MUTUAL is not emulated"
    )
    assert lines[-1].startswith("0 errors, 0 warnings, 2 notes in")
    assert run(capsys, BOOKINFO, f, "--strict")[0] == 0
    data = json.loads(run(capsys, BOOKINFO, f, "--format", "json")[1])
    assert data["notes"] == 2 and data["warnings"] == 0


def test_json_format(tmp_path, capsys):
    code, out, _ = run(capsys, BOOKINFO, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["errors"] == 0
    assert data["resources"] > 10


def test_unreadable_input_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    code, out, _ = run(capsys, broken)
    assert code == 2
    assert f"{broken}:2: error: YAML syntax error" in out
    code, out, _ = run(capsys, tmp_path / "missing.yaml")
    assert code == 2 and "no such file or folder" in out


def test_strict_turns_warnings_into_failure(tmp_path, capsys):
    f = tmp_path / "w.yaml"
    f.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n")
    assert run(capsys, f)[0] == 0
    assert run(capsys, f, "--strict")[0] == 1


@pytest.mark.parametrize(
    "content",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",
        "[" * 5000 + "]" * 5000,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], http: [{timeout: "
        + "9" * 5000
        + "}]}\n",
        "\x00\x01\x02",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: a, trafficPolicy: {connectionPool: {tcp: {maxConnections: 99999999999999999999999}}}}\n",
    ],
)
def test_hostile_files_give_a_message_not_a_traceback(tmp_path, content):
    f = tmp_path / "hostile.yaml"
    f.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "chaoskit", "validate", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert str(f) in proc.stdout
