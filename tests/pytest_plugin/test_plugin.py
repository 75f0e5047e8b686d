"""Options, ini settings, the report header and summary, report sections, JSON reports, xdist."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from chaoskit_pytest.fixtures import seed_for_test
from chaoskit_pytest.plugin import report_file_name

from tests.builders import service_entry

NO_CACHE = ("-p", "no:cacheprovider")


def test_the_options_are_documented_in_help(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "chaoskit: Istio traffic rules and faults for tests:",
            "  --chaos-config=PATH*",
            "  --chaos-seed=N|random|last",
            "  --chaos-report=DIR*",
        ]
    )
    result.stdout.fnmatch_lines(["  chaos_config (paths):*", "  chaos_seed (string):*"])


# -- seeds ------------------------------------------------------------------------------------


def test_the_header_shows_the_seed_to_replay(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest(*NO_CACHE, "--chaos-seed", "5")
    result.stdout.fnmatch_lines(["chaoskit: seed=5 (replay with --chaos-seed=5)"])


def test_a_random_seed_is_chosen_and_shown(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest(*NO_CACHE)
    result.stdout.re_match_lines([r"chaoskit: seed=(\d+) \(replay with --chaos-seed=\1\)"])


def test_last_replays_the_previous_seed(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(): pass")
    pytester.runpytest("--chaos-seed=1234").assert_outcomes(passed=1)
    result = pytester.runpytest("--chaos-seed=last")
    result.stdout.fnmatch_lines(["chaoskit: seed=1234 (replay with --chaos-seed=1234)"])
    again = pytester.runpytest("--chaos-seed=last")
    again.stdout.fnmatch_lines(["chaoskit: seed=1234 (replay with --chaos-seed=1234)"])


def test_last_without_a_cached_seed_says_so(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest("--chaos-seed=last")
    result.stdout.fnmatch_lines(
        [
            "chaoskit: seed=*",
            "chaoskit: --chaos-seed=last found no seed in the cache; chose a new one",
        ]
    )


def test_a_bad_seed_is_a_usage_error(pytester: pytest.Pytester):
    result = pytester.runpytest(*NO_CACHE, "--chaos-seed=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*argument --chaos-seed: 'soon' is not a seed: use a whole number, 'random' or 'last'"]
    )


def test_the_ini_file_sets_the_default_seed(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nchaos_seed = 77\n")
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest(*NO_CACHE)
    result.stdout.fnmatch_lines(["chaoskit: seed=77 (replay with --chaos-seed=77)"])
    result = pytester.runpytest(*NO_CACHE, "--chaos-seed=3")
    result.stdout.fnmatch_lines(["chaoskit: seed=3 (replay with --chaos-seed=3)"])


def test_the_same_seed_gives_the_same_decisions(inner: pytest.Pytester):
    """A 50% route fault hits the same requests in two runs with the same seed."""
    inner.makepyfile(
        """
        def test_coin(chaos):
            chaos.route_fault("payments", abort=503, percent=50)
            s = chaos.session()
            codes = [s.get("http://payments/").status_code for _ in range(20)]
            assert {200, 503} == set(codes)
            print("codes", "".join("x" if c == 503 else "." for c in codes))
        """
    )

    def codes(seed: str) -> str:
        result = inner.runpytest(*NO_CACHE, "-s", f"--chaos-seed={seed}")
        result.assert_outcomes(passed=1)
        found = re.search(r"codes ([.x]+)", result.stdout.str())
        assert found is not None
        return found.group(1)

    assert codes("9") == codes("9")


# -- base config ----------------------------------------------------------------------------------


def test_chaos_config_option_sets_the_base_config(pytester: pytest.Pytester, payments):
    mesh = pytester.mkdir("mesh")
    (mesh / "payments.yaml").write_text(service_entry("payments", payments.port))
    pytester.makepyfile(
        """
        def test_base(chaos):
            assert chaos.session().get("http://payments/").status_code == 200
            assert [se.name for se in chaos.proxy.validation.mesh.service_entries] == ["payments"]
        """
    )
    result = pytester.runpytest(*NO_CACHE, "--chaos-config", "mesh")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"chaoskit: base config: {mesh}"])


def test_chaos_config_ini_paths_are_relative_to_the_ini_file(pytester: pytest.Pytester, payments):
    (pytester.mkdir("mesh") / "payments.yaml").write_text(service_entry("payments", payments.port))
    pytester.makeini("[pytest]\nchaos_config = mesh\n")
    tests = pytester.mkdir("tests")
    (tests / "test_a.py").write_text(
        "def test_a(chaos):\n"
        "    assert chaos.session().get('http://payments/').status_code == 200\n"
    )
    pytester.runpytest(*NO_CACHE, "tests").assert_outcomes(passed=1)


def test_an_invalid_base_config_stops_the_run_before_any_test(pytester: pytest.Pytester):
    (pytester.path / "bad.yaml").write_text(
        "apiVersion: chaoskit.dev/v1alpha1\nkind: MeshConfig\n"
        "metadata: {name: mesh}\nspec: {timeout: soon}\n"
    )
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest(*NO_CACHE, "--chaos-config=bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: chaoskit: the base config is invalid:",
            "1 configuration error:",
            "  */bad.yaml:4: error: MeshConfig/default/mesh: spec.timeout: 'soon' is not a duration *",
        ]
    )
    assert "Traceback" not in result.stderr.str()


# -- reports --------------------------------------------------------------------------------------


FAILING = """
def test_fails(chaos):
    chaos.route_fault("payments", abort=503)
    chaos.session().post("http://payments/pay")
    assert False, "checkout did not recover"

def test_passes(chaos):
    chaos.session().get("http://payments/")

def test_without_chaos():
    assert False
"""


def test_a_failing_test_shows_its_chaos_records(inner: pytest.Pytester):
    inner.makepyfile(test_report=FAILING)
    result = inner.runpytest(*NO_CACHE, "--chaos-seed=5")
    result.assert_outcomes(failed=2, passed=1)
    seed = seed_for_test(5, "test_report.py::test_fails")
    result.stdout.fnmatch_lines(
        [
            "*checkout did not recover*",
            "*- chaoskit records -*",
            f"seed {seed} (session seed 5: replay with --chaos-seed=5)",
            "declared faults:",
            "  VirtualService/default/payments-route-fault http[[]0[]] (abort): fired in 1 request",
            "1 request through the proxy:",
            "  1 request to payments.default.svc.cluster.local:",
            "    POST /pay → 503 [[]FI[]] in * ms (no upstream attempt; route fault abort)",
            "*_ test_without_chaos _*",
        ]
    )
    assert result.stdout.str().count("- chaoskit records -") == 1


def test_chaos_report_writes_one_json_file_per_test_and_an_index(inner: pytest.Pytester):
    inner.makepyfile(test_report=FAILING)
    result = inner.runpytest(*NO_CACHE, "--chaos-seed=5", "--chaos-report=out")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines([f"chaoskit: wrote 2 test reports to {inner.path / 'out'}"])
    out = inner.path / "out"
    index = json.loads((out / "index.json").read_text())
    assert index["session_seed"] == 5
    assert [(t["nodeid"], t["outcome"], t["requests"]) for t in index["tests"]] == [
        ("test_report.py::test_fails", "failed", 1),
        ("test_report.py::test_passes", "passed", 1),
    ]
    (failed,) = index["failed"]
    assert failed["nodeid"] == "test_report.py::test_fails"
    assert failed["records"][0]["faults"] == ["abort"] and failed["records"][0]["status"] == 503
    one = json.loads((out / index["tests"][1]["file"]).read_text())
    assert one["seed"] == seed_for_test(5, "test_report.py::test_passes")
    assert one["phases"] == {"setup": "passed", "call": "passed", "teardown": "passed"}
    assert one["stats"]["http.downstream_rq_total"] == 1
    assert one["records"][0]["attempts"][0]["status"] == 200
    # a second run starts from an empty folder
    inner.makepyfile(test_report="def test_only(chaos): pass")
    inner.runpytest(*NO_CACHE, "--chaos-report=out").assert_outcomes(passed=1)
    assert len(json.loads((out / "index.json").read_text())["tests"]) == 1


def test_report_file_names_are_safe_and_unique():
    a = report_file_name("tests/test_x.py::test_a[param/1]")
    assert a.startswith("tests_test_x.py_test_a_param_1-") and a.endswith(".json")
    assert a != report_file_name("tests/test_x.py::test_a[param 1]")


# -- xdist ----------------------------------------------------------------------------------------


def test_each_xdist_worker_has_its_own_proxy_and_tests_stay_isolated(
    pytester: pytest.Pytester, payments
):
    pytest.importorskip("xdist")
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def chaos_config():
            return [{service_entry("payments", payments.port)!r}]
        """
    )
    body = textwrap.dedent(
        """
        import os
        import pathlib
        import pytest
        from chaoskit_pytest.fixtures import seed_for_test

        @pytest.mark.parametrize("n", range(4))
        def test_{name}(chaos, request, n):
            assert chaos.seed == seed_for_test(5, request.node.nodeid)
            {fault}
            s = chaos.session()
            codes = {{s.get("http://payments/").status_code for _ in range(5)}}
            assert codes == {{{status}}}
            assert len(chaos.records) == 5
            marks = pathlib.Path("marks")
            marks.mkdir(exist_ok=True)
            (marks / f"{{os.getpid()}}-{name}-{{n}}").write_text(chaos.url)
        """
    )
    pytester.makepyfile(
        test_abort=body.format(
            name="abort", fault='chaos.route_fault("payments", abort=503)', status=503
        ),
        test_clean=body.format(name="clean", fault="pass", status=200),
    )
    result = pytester.runpytest_subprocess(*NO_CACHE, "-n", "2", "--chaos-seed=5")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["chaoskit: seed=5 (replay with --chaos-seed=5)"])
    marks = list((pytester.path / "marks").iterdir())
    workers = {p.name.split("-")[0] for p in marks}
    urls = {p.read_text() for p in marks}
    assert len(marks) == 8 and len(workers) == 2 and len(urls) == 2


def test_loading_the_plugin_imports_nothing_heavy():
    """The plugin loads in every pytest run of the venv: until a test uses chaos it must not
    import chaoskit's config, the proxy, mitmproxy, aiohttp, hypothesis, requests or yaml."""
    import subprocess
    import sys

    heavy = ("mitmproxy", "aiohttp", "hypothesis", "matplotlib", "requests", "yaml")
    code = (
        "import sys, chaoskit_pytest.plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{heavy!r} or m.startswith(('chaoskit.config', 'chaoskit.proxy', 'chaoskit.report'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
