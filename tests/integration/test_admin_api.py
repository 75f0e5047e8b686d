"""The admin listener's configuration API against a real proxy and real upstreams: a change
applied over HTTP takes effect on the next request, an invalid one changes nothing."""

from __future__ import annotations

import json
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


# -- /faults: named faults, Toxiproxy-style ------------------------------------------------------


def put(url: str, body: object) -> requests.Response:
    return requests.put(url, data=json.dumps(body).encode(), timeout=10)


def test_a_route_fault_by_name_is_created_listed_idempotent_and_removed(mesh, client, api):
    teapot = {"host": "ratings", "abort": {"httpStatus": 418}}
    r = put(f"{api}/faults/teapot", teapot)
    assert r.status_code == 201
    created = [{"kind": "VirtualService", "namespace": "default", "name": "fault-teapot",
                "action": "created"}]  # fmt: skip
    assert r.json() == {"name": "teapot", "namespace": "default", "type": "route", **teapot,
                        "resources": created}  # fmt: skip
    got = client.get("http://ratings:9080/")
    assert got.status_code == 418 and "FI" in mesh.records[-1].flags
    listed = requests.get(f"{api}/faults", timeout=10).json()["faults"]
    assert [(f["name"], f["resources"]) for f in listed] == [("teapot", created)]
    assert requests.get(f"{api}/faults/teapot", timeout=10).json() == listed[0]
    assert put(f"{api}/faults/teapot", teapot).status_code == 200  # unchanged: same answer
    assert (
        requests.post(f"{api}/faults", json={"name": "teapot", **teapot}, timeout=10).status_code
        == 409
    )
    r = requests.delete(f"{api}/faults/teapot", timeout=10)
    assert (r.status_code, r.text) == (204, "")
    assert client.get("http://ratings:9080/").status_code == 200
    r = requests.delete(f"{api}/faults/teapot", timeout=10)  # the state is the same: 404 says so
    assert r.status_code == 404 and r.json() == {"error": "fault 'teapot' not found", "status": 404}
    assert requests.get(f"{api}/faults/teapot", timeout=10).status_code == 404


def test_a_route_fault_is_spliced_into_the_hosts_virtual_service_and_removed_from_it(
    mesh, client, api
):
    from tests.builders import ratings_vs

    vs = ratings_vs("headers: {response: {set: {x-route: ratings-vs}}}\n")
    assert post(f"{api}/config/apply", vs).status_code == 200
    r = put(f"{api}/faults/slow", {"host": "ratings", "delay": {"fixedDelay": "300ms",
                                                             "percentage": 100}})  # fmt: skip
    assert r.json()["resources"] == [
        {"kind": "VirtualService", "namespace": "default", "name": "ratings", "action": "patched"}
    ]
    got = client.get("http://ratings:9080/")
    assert got.headers["x-route"] == "ratings-vs"  # the VirtualService's own rule still applies
    assert got.elapsed.total_seconds() >= 0.3 and "DI" in mesh.records[-1].flags
    assert requests.delete(f"{api}/faults/slow", timeout=10).status_code == 204
    got = client.get("http://ratings:9080/")
    assert got.headers["x-route"] == "ratings-vs" and "DI" not in mesh.records[-1].flags


def test_a_route_fault_with_match_hits_only_matching_requests(mesh, client, api):
    put(f"{api}/faults/only-bob", {"host": "ratings", "abort": {"httpStatus": 503},
                                   "match": [{"headers": {"end-user": {"exact": "bob"}}}]})  # fmt: skip
    assert client.get("http://ratings:9080/", headers={"end-user": "bob"}).status_code == 503
    assert client.get("http://ratings:9080/", headers={"end-user": "ann"}).status_code == 200


def test_an_upstream_fault_by_name_acts_per_attempt(mesh, client, api):
    r = requests.post(f"{api}/faults", timeout=10, json={
        "name": "flaky", "type": "upstream", "host": "ratings", "abort": {"httpStatus": 503},
        "firstN": 1})  # fmt: skip
    assert r.status_code == 201 and r.json()["resources"][0]["kind"] == "UpstreamFault"
    assert client.get("http://ratings:9080/").status_code == 503
    assert mesh.records[-1].attempts[0].faults == ("UpstreamFault/default/flaky:abort",)
    assert client.get("http://ratings:9080/").status_code == 200  # firstN: 1


def test_an_invalid_fault_is_refused_with_the_located_message_and_changes_nothing(
    mesh, client, api
):
    put(f"{api}/faults/boom", {"host": "ratings", "abort": {"httpStatus": 503}})
    r = requests.put(f"{api}/faults/boom", data="host: ratings\nabort:\n  httpStatus: 999\n",
                     timeout=10)  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"] == (
        "<admin:PUT /faults/boom>:3: error: fault/boom: abort.httpStatus: "
        "HTTP status 999 is not in range 200-599\n"
    )
    assert r.json()["errors"][0]["path"] == "abort.httpStatus"
    r = put(f"{api}/faults/typo", {"host": "ratngs", "abort": {"httpStatus": 503}})
    assert r.status_code == 400 and 'did you mean "ratings"?' in r.json()["error"]
    r = put(f"{api}/faults/up", {"host": "ratings", "reset": {"after": "headers"}})
    assert '"reset" is an UpstreamFault field: add "type": "upstream"' in r.json()["error"]
    r = put(
        f"{api}/faults/other", {"name": "boom", "host": "ratings", "delay": {"fixedDelay": "1s"}}
    )
    assert "the body names 'boom' but the URL 'other'" in r.json()["error"]
    r = put(f"{api}/faults/twin", {"host": "ratings", "delay": {"fixedDelay": "1s"}})
    assert r.status_code == 409 and "fault 'boom' already injects" in r.json()["error"]
    assert client.get("http://ratings:9080/").status_code == 503  # the good fault still holds
    assert [f["name"] for f in requests.get(f"{api}/faults", timeout=10).json()["faults"]] == [
        "boom"
    ]


def test_fault_reset_config_reset_and_the_admin_checks(mesh, client, api):
    put(f"{api}/faults/a", {"host": "ratings", "abort": {"httpStatus": 503}})
    r = requests.put(f"{api}/faults/b", data=b"{}", headers={"origin": "http://evil.test"},
                     timeout=10)  # fmt: skip
    assert r.status_code == 403
    r = requests.post(f"{api}/faults/reset", timeout=10)
    assert (r.status_code, r.text) == (204, "")
    assert requests.get(f"{api}/faults", timeout=10).json() == {"faults": []}
    assert client.get("http://ratings:9080/").status_code == 200
    put(f"{api}/faults/a", {"host": "ratings", "abort": {"httpStatus": 503}})
    assert post(f"{api}/config/reset", "").status_code == 200  # back to the files: faults too
    assert requests.get(f"{api}/faults", timeout=10).json() == {"faults": []}
    assert requests.patch(f"{api}/faults/a", timeout=10).status_code == 405
    reserved = {"name": "reset", "host": "ratings", "abort": {"httpStatus": 503}}
    assert requests.post(f"{api}/faults", json=reserved, timeout=10).status_code == 400


def test_a_file_reload_splices_the_fault_into_the_reloaded_virtual_service(
    mesh, client, api, upstreams
):
    from tests.builders import ratings_vs
    from tests.integration.conftest import mesh_yaml

    put(f"{api}/faults/teapot", {"host": "ratings", "abort": {"httpStatus": 418}})
    vs = ratings_vs("headers: {response: {set: {x-route: from-the-files}}}\n")
    mesh.rebase(mesh_yaml(upstreams) + "---\n" + vs)  # the files now define the VirtualService
    got = client.get("http://ratings:9080/")
    assert (got.status_code, got.headers["x-route"]) == (418, "from-the-files")
    listed = requests.get(f"{api}/faults/teapot", timeout=10).json()["resources"]
    assert listed == [
        {"kind": "VirtualService", "namespace": "default", "name": "ratings", "action": "patched"}
    ]
    mesh.rebase(mesh_yaml(upstreams))


def test_route_name_faults_one_named_rule_of_the_hosts_virtual_service(mesh, client, api):
    from tests.builders import route_to

    named = route_to("ratings").replace(
        "  - route:",
        "  - name: bob\n    match: [{headers: {end-user: {exact: bob}}}]\n"
        "    route: [{destination: {host: ratings}}]\n  - route:",
    )
    assert post(f"{api}/config/apply", named).status_code == 200
    r = put(
        f"{api}/faults/bob", {"host": "ratings", "routeName": "bob", "abort": {"httpStatus": 503}}
    )
    assert r.status_code == 201, r.text
    assert client.get("http://ratings:9080/", headers={"end-user": "bob"}).status_code == 503
    assert client.get("http://ratings:9080/").status_code == 200
    r = put(
        f"{api}/faults/typo", {"host": "ratings", "routeName": "bbo", "abort": {"httpStatus": 503}}
    )
    assert r.status_code == 400 and 'did you mean "bob"?' in r.json()["error"]
