"""``chaoskit apply`` / ``chaoskit delete`` end to end against a running ``chaoskit proxy``."""

from __future__ import annotations

import requests

from chaoskit.cli import main
from chaoskit.testing import Upstream
from chaoskit.testing.upstream import free_port
from tests.builders import fault
from tests.integration.test_cli_proxy import BIN, service, start, stop


def test_apply_and_delete_change_a_running_proxy(tmp_path, capsys):
    with Upstream("web") as up:
        (tmp_path / "web.yaml").write_text(service(up))
        abort = tmp_path / "abort.yaml"
        abort.write_text(fault("host: web\nabort: {httpStatus: 503}\n", name="boom"))
        listen, admin = free_port(), free_port()
        proc, out, _ = start(
            [str(BIN / "chaoskit"), "proxy", str(tmp_path / "web.yaml"),
             "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"],
            tmp_path,
        )  # fmt: skip
        try:
            out.wait_for("chaoskit proxy ready")
            proxies = {"http": f"http://127.0.0.1:{listen}"}
            flag = ["--admin", f"127.0.0.1:{admin}"]

            assert main(["apply", str(abort), *flag]) == 0
            assert capsys.readouterr().out == "upstreamfault/boom created\n"
            assert requests.get("http://web/", proxies=proxies, timeout=10).status_code == 503
            assert main(["apply", str(abort), *flag]) == 0
            assert capsys.readouterr().out == "upstreamfault/boom unchanged\n"

            bad = tmp_path / "bad.yaml"
            bad.write_text(abort.read_text().replace("503", "999"))
            assert main(["apply", str(bad), *flag]) == 1
            assert capsys.readouterr().err == (  # the real file and line, the loader's message
                f"{bad}:6: error: UpstreamFault/default/boom: spec.abort.httpStatus: "
                "HTTP status 999 is not in range 200-599\n"
            )
            assert requests.get("http://web/", proxies=proxies, timeout=10).status_code == 503

            assert main(["delete", str(abort), *flag]) == 0
            assert capsys.readouterr().out == "upstreamfault/boom deleted\n"
            assert requests.get("http://web/", proxies=proxies, timeout=10).status_code == 200
            assert main(["delete", str(abort), *flag]) == 1
            assert "not found" in capsys.readouterr().err

            assert main(["apply", str(tmp_path / "missing.yaml"), *flag]) == 2
        finally:
            stop(proc)
    assert main(["apply", str(abort), "--admin", f"127.0.0.1:{admin}"]) == 3
    assert "cannot reach the proxy's admin" in capsys.readouterr().err
