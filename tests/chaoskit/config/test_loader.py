import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.config.loader import load_paths, load_text
from chaoskit.config.virtual_service import VirtualService

VS = """\
apiVersion: networking.istio.io/{version}
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews}}
"""


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_istio_api_versions(version):
    result = load_text(VS.format(version=version))
    assert not result.issues
    (vs,) = result.resources
    assert isinstance(vs, VirtualService) and vs.api_version == f"networking.istio.io/{version}"


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (VS.format(version="v2"), "apiVersion", "not supported for VirtualService"),
        (
            VS.format(version="v1").replace("kind: VirtualService", "kind: VirtualServce"),
            "kind",
            'did you mean "VirtualService"',
        ),
        (
            "apiVersion: chaoskit.dev/v1alpha1\nkind: UpstreamFalt\nmetadata: {name: x}\nspec: {}\n",
            "kind",
            'did you mean "UpstreamFault"',
        ),
        ("kind: VirtualService\nmetadata: {name: x}\nspec: {}\n", "", '"apiVersion" is required'),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n",
            "",
            '"spec" is required',
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nspec: {hosts: [a]}\n",
            "",
            '"metadata" is required',
        ),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: Bad_Name}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}\n",
            "metadata.name",
            "not a valid name",
        ),
        ("- 1\n- 2\n", "", "must be a mapping"),
        (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: [1]\n",
            "spec",
            "must be a mapping",
        ),
    ],
)
def test_envelope_errors(text, path, fragment):
    found = [(i.path, i.message) for i in load_text(text).issues.errors]
    assert any(p == path and fragment in m for p, m in found), found


def test_foreign_kinds_are_ignored_with_a_warning():
    # (Services and Deployments are read as the registry: tests/chaoskit/config/test_kubernetes.py)
    result = load_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert "not an Istio or chaoskit resource" in w.message


def test_kubectl_list_is_unwrapped():
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        "- " + line + "\n" if i == 0 else "  " + line + "\n"
        for i, line in enumerate(VS.format(version="v1").splitlines())
    )
    result = load_text(text)
    assert not result.issues.errors, [str(i) for i in result.issues]
    assert len(result.resources) == 1


def test_folders_are_read_recursively_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.yaml").write_text(VS.format(version="v1"))
    (tmp_path / "b" / "c.yml").write_text(VS.format(version="v1").replace("reviews}", "ratings}"))
    (tmp_path / "notes.txt").write_text("not yaml")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.yaml").write_text(": : :")
    result = load_paths([tmp_path])
    assert [r.name for r in result.resources] == ["reviews", "ratings"]
    assert not result.issues and not result.unreadable


def test_missing_and_broken_files_are_unreadable(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    result = load_paths([tmp_path / "nope.yaml", bad])
    assert set(result.unreadable) == {str(tmp_path / "nope.yaml"), str(bad)}
    assert {i.message for i in result.issues.errors} >= {"no such file or folder"}


# -- properties: the loader only ever reports issues; it never raises ---------------------

VALID = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}}]
    fault: {delay: {fixedDelay: 7s, percentage: {value: 100}}}
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,reset"}
    timeout: 3s
    route:
    - destination: {host: reviews, subset: v2}
      weight: 80
    - destination: {host: reviews, subset: v1}
      weight: 20
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}]
---
apiVersion: chaoskit.dev/v1alpha1
kind: UpstreamFault
metadata: {name: flaky}
spec: {host: reviews, abort: {httpStatus: 503}, firstN: 2}
"""

_yaml_chars = st.sampled_from(
    [*string.printable, "{", "}", "[", "]", ":", "-", "&", "*", "!", "|", ">", "é", "\t"]
)


@given(st.data())
def test_mutated_valid_config_never_raises(data):
    text = VALID
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = "".join(data.draw(st.lists(_yaml_chars, min_size=1, max_size=6)))
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk) :]
        else:
            text = text[:pos] + chunk + text[pos + len(chunk) :]
    result = load_text(text)  # must not raise anything
    for issue in result.issues:
        assert issue.location.line >= 1


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["1s", "0s", "250ms", "*", "reviews", "v1", "5xx", "-1"]),
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "hosts",
                    "http",
                    "route",
                    "destination",
                    "host",
                    "subset",
                    "match",
                    "uri",
                    "prefix",
                    "fault",
                    "delay",
                    "abort",
                    "percentage",
                    "value",
                    "retries",
                    "attempts",
                    "timeout",
                    "trafficPolicy",
                    "subsets",
                    "name",
                    "labels",
                    "endpoints",
                    "ports",
                    "number",
                    "resolution",
                    "servers",
                    "egress",
                    "firstN",
                    "sequence",
                    "weight",
                    "headers",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(
    st.sampled_from(
        [
            "VirtualService",
            "DestinationRule",
            "ServiceEntry",
            "WorkloadEntry",
            "Gateway",
            "Sidecar",
            "UpstreamFault",
            "MeshConfig",
        ]
    ),
    _values,
)
def test_random_specs_never_raise(kind, spec):
    import json

    api = (
        "chaoskit.dev/v1alpha1"
        if kind in ("UpstreamFault", "MeshConfig")
        else "networking.istio.io/v1"
    )
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    text = json.dumps(doc, allow_nan=True)  # JSON is YAML
    load_text(text)


def test_other_istio_kinds_are_ignored_with_a_warning():
    result = load_text(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: x}\nspec: {}\n"
    )
    assert not result.issues.errors
    assert "does not use" in result.issues.warnings[0].message


def test_empty_folder_is_unreadable(tmp_path):
    result = load_paths([tmp_path])
    assert result.unreadable == (str(tmp_path),)


def test_a_folder_that_cannot_be_read_is_an_error_not_a_smaller_mesh(tmp_path, monkeypatch):
    # Under descriptor pressure (EMFILE) Path.rglob skipped the folder it could not open and
    # returned the rest: the proxy's watcher would have reloaded part of the mesh.
    import errno
    import os

    from chaoskit.config import loader
    from chaoskit.config.issues import Issues

    (tmp_path / "a.yaml").write_text("{}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("{}\n")
    real_walk = os.walk

    def walk(top, onerror=None, **kw):
        for entry in real_walk(top, onerror=onerror, **kw):
            if entry[0].endswith("sub") and onerror is not None:
                onerror(OSError(errno.EMFILE, "Too many open files", entry[0]))
                continue
            yield entry

    monkeypatch.setattr(loader.os, "walk", walk)
    issues = Issues()
    files, missing = loader.collect_files([tmp_path], issues)
    assert files == [] and missing == [str(tmp_path)]
    assert any("Too many open files" in str(i) for i in issues.errors)


def test_a_resource_defined_in_two_files_of_a_folder_is_warned_with_both_places(tmp_path):
    first = tmp_path / "a.yaml"
    first.write_text(VS.format(version="v1"))
    (tmp_path / "sub").mkdir()
    second = tmp_path / "sub" / "b.yaml"
    second.write_text("# the copy\n" + VS.format(version="v1beta1"))
    result = load_paths([tmp_path])
    assert [str(i) for i in result.issues] == [
        f"{second}:2: warning: VirtualService/default/reviews: metadata.name: also defined in "
        f"{first}:1; the files of a folder are applied in path order, so this later one replaces it"
    ]
    assert list(result.duplicates) == list(result.issues)


def test_files_named_one_by_one_are_layers_not_duplicates(tmp_path):
    base, variant = tmp_path / "base.yaml", tmp_path / "variant.yaml"
    base.write_text(VS.format(version="v1"))
    variant.write_text(VS.format(version="v1beta1"))
    result = load_paths([base, variant])  # a deliberate layer, as chaoskit proxy base variant
    assert not result.issues and not result.duplicates
