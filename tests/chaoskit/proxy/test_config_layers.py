"""``chaoskit.Proxy``'s configuration changes without a running proxy (swaps happen in-process):
an admin change and a file reload made at once, and the duplicate-definition warning."""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoskit.proxy import config_layers
from chaoskit.proxy.admin_api import AdminConfigApi
from chaoskit.proxy.api import Proxy
from tests.builders import fault, service_entry

RATINGS = service_entry("ratings", 9080)
DETAILS = service_entry("details", 9081)


def test_an_admin_change_and_a_file_reload_made_at_once_keep_both(monkeypatch):
    proxy = Proxy(RATINGS, seed=1)
    admin = AdminConfigApi(proxy)
    inside, release = threading.Event(), threading.Event()
    real = config_layers.validated

    def validated(*sources: Any, base: Any = ()) -> Any:
        # The admin change stops inside its swap, having read the configuration it builds on.
        if threading.current_thread().name == "admin" and not inside.is_set():
            inside.set()
            assert release.wait(10)
        return real(*sources, base=base)

    monkeypatch.setattr(config_layers, "validated", validated)
    answers: list[Any] = []
    body = fault("host: ratings\nabort: {httpStatus: 503}\n", name="boom").encode()
    change = threading.Thread(
        target=lambda: answers.append(admin.answer_now("POST", "/config/apply", body, False)),
        name="admin",
    )
    change.start()
    assert inside.wait(10)
    reload = threading.Thread(target=proxy.rebase, args=(RATINGS + "---\n" + DETAILS,))
    reload.start()
    reload.join(0.5)  # the reload now waits for the admin change (without the lock it is done)
    release.set()
    change.join(10)
    reload.join(10)
    assert answers == [(200, "text/plain", "upstreamfault/boom created\n")]
    for mesh in (proxy.validation.mesh, proxy.pipeline.snapshot.mesh):
        assert {r.name for r in mesh.resources} == {"ratings", "details", "boom"}


def test_a_reload_warns_of_a_resource_two_files_of_a_folder_define(tmp_path, caplog):
    (tmp_path / "a.yaml").write_text(RATINGS)
    (tmp_path / "b.yaml").write_text(RATINGS)
    proxy = Proxy(RATINGS, seed=1)
    with caplog.at_level(logging.WARNING, logger="chaoskit"):
        proxy.rebase(str(tmp_path))
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'b.yaml'}:1: warning: ServiceEntry/default/ratings: metadata.name: also "
        f"defined in {tmp_path / 'a.yaml'}:1; the files of a folder are applied in path order, "
        "so this later one replaces it"
    ]
