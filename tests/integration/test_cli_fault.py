"""``chaoskit fault add|list|remove|reset`` end to end against a running ``chaoskit proxy``, and
the proxy's start-up warning for a resource that two files of its folder define."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from chaoskit.cli import main
from chaoskit.testing import Upstream
from chaoskit.testing.upstream import free_port
from tests.integration.test_cli_proxy import BIN, Lines, service, start, stop


@pytest.fixture(scope="module")
def cli_proxy(tmp_path_factory) -> Iterator[tuple[dict[str, str], list[str], Lines]]:
    """A ``chaoskit proxy`` on a folder whose ``web2.yaml`` repeats ``web.yaml``; yields
    the client's proxies, the ``--admin`` flag for the CLI, and the proxy's stderr."""
    tmp_path = tmp_path_factory.mktemp("cli-fault")
    with Upstream("web") as up:
        mesh = tmp_path / "mesh"
        mesh.mkdir()
        (mesh / "web.yaml").write_text(service(up))
        (mesh / "web2.yaml").write_text(service(up))
        listen, admin = free_port(), free_port()
        proc, out, err = start(
            [str(BIN / "chaoskit"), "proxy", str(mesh),
             "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"],
            tmp_path,
        )  # fmt: skip
        try:
            out.wait_for("chaoskit proxy ready")
            yield {"http": f"http://127.0.0.1:{listen}"}, ["--admin", f"127.0.0.1:{admin}"], err
        finally:
            stop(proc)


def get(proxies: dict[str, str]) -> int:
    return requests.get("http://web/", proxies=proxies, timeout=10).status_code


def test_the_proxy_warns_at_start_of_a_resource_two_files_of_its_folder_define(cli_proxy):
    _, _, err = cli_proxy
    line = err.wait_for("also defined in")
    assert line.startswith("chaoskit: WARNING: ") and "web.yaml:1;" in line
    assert "web2.yaml:1: warning: ServiceEntry/default/web: metadata.name:" in line


def test_add_list_remove_and_reset_faults(cli_proxy, tmp_path, capsys):
    proxies, flag, _ = cli_proxy
    assert main(["fault", "add", "boom", "web", "--abort", "503", *flag]) == 0
    assert capsys.readouterr().out == "fault/boom created\n"
    assert get(proxies) == 503
    assert main(["fault", "add", "boom", "web", "--abort", "429", *flag]) == 0  # idempotent PUT
    assert capsys.readouterr().out == "fault/boom configured\n"
    assert get(proxies) == 429

    assert main(["fault", "list", *flag]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["NAME", "TYPE", "HOST", "ACTIVE", "IN", "FAULT"]
    assert listed[1].split() == [
        "boom", "route", "web", "virtualservice/fault-boom", "(created)",
        '{"abort":{"httpStatus":429}}',
    ]  # fmt: skip
    assert main(["fault", "list", "--json", *flag]) == 0
    assert [f["name"] for f in json.loads(capsys.readouterr().out)["faults"]] == ["boom"]

    body = tmp_path / "slow.yaml"
    body.write_text("name: slow\ntype: upstream\nhost: web\nabort: {httpStatus: 999}\n")
    assert main(["fault", "add", "slow", "--from", str(body), *flag]) == 1
    assert capsys.readouterr().err == (  # the file's own line, the loader's message
        f"{body}:4: error: fault/slow: abort.httpStatus: HTTP status 999 is not in range 200-599\n"
    )
    assert main(["fault", "add", "x", "wbe", "--delay", "1s", *flag]) == 1
    assert 'did you mean "web"?' in capsys.readouterr().err
    assert main(["fault", "add", "x", "web", *flag]) == 2  # nothing to inject
    assert main(["fault", "add", "x", "web", "--from", str(body), *flag]) == 2
    capsys.readouterr()

    assert main(["fault", "remove", "boom", *flag]) == 0
    assert capsys.readouterr().out == "fault/boom removed\n"
    assert get(proxies) == 200
    assert main(["fault", "remove", "boom", *flag]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["fault", "remove", "boom", "--ignore-not-found", *flag]) == 0

    assert main(["fault", "add", "up", "web", "--upstream", "--abort", "502", *flag]) == 0
    assert get(proxies) == 502
    assert main(["fault", "reset", *flag]) == 0
    assert capsys.readouterr().out == "fault/up created\nfaults cleared\n"
    assert get(proxies) == 200
    assert main(["fault", "list", *flag]) == 0
    assert capsys.readouterr().out == "no faults\n"


def test_an_unreachable_proxy_is_exit_3(capsys):
    assert main(["fault", "list", "--admin", f"127.0.0.1:{free_port()}"]) == 3
    assert "cannot reach the proxy's admin" in capsys.readouterr().err
