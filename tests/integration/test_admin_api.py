"""The admin listener's configuration API against a real proxy and real upstreams: a change
applied over HTTP takes effect on the next request, an invalid one changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from chaoskit.proxy.admin_changes import RuntimeLayer
from tests.builders import fault

ABORT = fault("host: ratings\nabort: {httpStatus: 503}\n", name="boom")


@pytest.fixture
def api(mesh) -> Iterator[str]:
    """The admin URL, with the API's layer cleared before and after."""
    mesh.set_layer(RuntimeLayer())
    yield mesh.admin_url
    mesh.set_layer(RuntimeLayer())


def post(url: str, body: str, **headers: str) -> requests.Response:
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def test_an_applied_fault_hits_the_next_request_and_delete_removes_it(mesh, client, api):
    assert client.get("http://ratings:9080/").status_code == 200
    r = post(f"{api}/config/apply", ABORT)
    assert (r.status_code, r.text) == (200, "upstreamfault/boom created\n")
    assert client.get("http://ratings:9080/").status_code == 503
    assert mesh.records[-1].attempts[0].faults == ("UpstreamFault/default/boom:abort",)
    applied = requests.get(f"{api}/config/applied", timeout=10).json()["applied"]
    assert applied == [{"kind": "UpstreamFault", "namespace": "default", "name": "boom"}]
    assert post(f"{api}/config/apply", ABORT).text == "upstreamfault/boom unchanged\n"
    r = post(f"{api}/config/delete", ABORT)
    assert (r.status_code, r.text) == (200, "upstreamfault/boom deleted\n")
    assert client.get("http://ratings:9080/").status_code == 200
    assert post(f"{api}/config/delete", ABORT).status_code == 404


def test_applying_again_configures_and_reset_restores_the_files(mesh, client, api):
    post(f"{api}/config/apply", ABORT)
    r = post(f"{api}/config/apply", ABORT.replace("503", "429"))
    assert r.text == "upstreamfault/boom configured\n"
    assert client.get("http://ratings:9080/").status_code == 429
    assert post(f"{api}/config/reset", "").status_code == 200
    assert client.get("http://ratings:9080/").status_code == 200
    assert requests.get(f"{api}/config/applied", timeout=10).json() == {"applied": []}


def test_an_invalid_change_is_refused_with_file_line_and_field_and_changes_nothing(
    mesh, client, api
):
    post(f"{api}/config/apply", ABORT)
    bad = ABORT.replace("httpStatus: 503", "httpStatus: 999")
    r = post(f"{api}/config/apply", bad)
    assert r.status_code == 400
    assert "<admin:POST /config/apply>:" in r.text and "httpStatus" in r.text
    j = requests.post(f"{api}/config/apply?format=json", data=bad, timeout=10)
    assert j.status_code == 400 and "httpStatus" in j.json()["errors"][0]["path"]
    assert client.get("http://ratings:9080/").status_code == 503  # the good fault still holds
    assert post(f"{api}/config/apply", "kind: [").status_code == 400  # not YAML


def test_a_cross_site_change_is_refused(mesh, client, api):
    r = post(f"{api}/config/apply", ABORT, origin="http://evil.test")
    assert r.status_code == 403
    assert client.get("http://ratings:9080/").status_code == 200


def test_the_api_is_not_reachable_through_the_proxy(mesh, client, api):
    r = client.post(f"{api}/config/apply", data=ABORT)  # forwarded to the admin port
    assert (r.status_code, r.text) == (502, "request loop detected")
    assert client.get("http://ratings:9080/").status_code == 200


def test_a_file_reload_keeps_the_api_layer_on_top(mesh, client, api, upstreams):
    from tests.integration.conftest import mesh_yaml

    post(f"{api}/config/apply", ABORT)
    mesh.rebase(mesh_yaml(upstreams))
    assert client.get("http://ratings:9080/").status_code == 503
