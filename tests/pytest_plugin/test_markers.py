"""``@pytest.mark.chaos``: evaluation into a ChaosMark, and clean failures for bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from chaoskit_pytest.markers import MARKER_HELP, ChaosMark, evaluate_chaos_marks, looks_like_yaml

VS = (
    "apiVersion: networking.istio.io/v1\\nkind: VirtualService\\nmetadata: {name: payments}\\n"
    "spec: {hosts: [payments], http: [{route: [{destination: {host: payments}}], timeout: 2s}]}\\n"
)


def test_looks_like_yaml():
    assert looks_like_yaml("apiVersion: v1") and looks_like_yaml("a: 1\nb: 2")
    assert looks_like_yaml("{kind: X}") and looks_like_yaml("- a")
    assert not looks_like_yaml("mesh/faults.yaml")


def test_no_mark_evaluates_to_none(pytester: pytest.Pytester):
    item = pytester.getitem("def test_func(): pass")
    assert evaluate_chaos_marks(item) is None


def test_marks_combine_outermost_first_and_the_innermost_seed_wins(pytester: pytest.Pytester):
    item = pytester.getitem(
        """
        import pytest

        pytestmark = pytest.mark.chaos("a: 1\\n", seed=1)

        @pytest.mark.chaos({"b": 2}, seed=2)
        class TestX:
            @pytest.mark.chaos("c: 3\\n")
            def test_func(self):
                pass
        """
    )
    assert evaluate_chaos_marks(item) == ChaosMark(("a: 1\n", {"b": 2}, "c: 3\n"), seed=2)


def test_relative_paths_resolve_against_the_test_file_then_the_rootdir(pytester: pytest.Pytester):
    pytester.mkdir("mesh")
    (pytester.path / "mesh" / "faults.yaml").write_text("")
    sub = pytester.mkdir("sub")
    (sub / "local.yaml").write_text("")
    test_file = sub / "test_a.py"
    test_file.write_text(
        "import pytest\n\n"
        "@pytest.mark.chaos('local.yaml', ['mesh/faults.yaml'])\n"
        "def test_a(): pass\n"
    )
    (item,) = pytester.getitems(test_file)
    mark = evaluate_chaos_marks(item)
    assert mark == ChaosMark((str(sub / "local.yaml"), [str(pytester.path / "mesh/faults.yaml")]))


def run_marked(pytester: pytest.Pytester, decorator: str) -> pytest.RunResult:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        {decorator}
        def test_a(chaos):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "Traceback" not in out and "pytest_plugin/" not in out, out
    return result


@pytest.mark.parametrize(
    ("decorator", "message"),
    [
        (
            "@pytest.mark.chaos(42)",
            "  argument 1: 42 (int) is not a config source: pass a path, YAML text, a dict or a "
            "resource",
        ),
        (
            "@pytest.mark.chaos(seeds=1)",
            "  unexpected keyword argument 'seeds'; did you mean 'seed'?",
        ),
        (
            "@pytest.mark.chaos(color='red')",
            "  unexpected keyword argument 'color' (it takes: seed)",
        ),
        ("@pytest.mark.chaos(seed='x')", "  seed must be a whole number >= 0, not 'x'"),
        ("@pytest.mark.chaos(seed=-1)", "  seed must be a whole number >= 0, not -1"),
        ("@pytest.mark.chaos([None])", "  argument 1: None (NoneType) is not a config source: *"),
    ],
)
def test_bad_marker_arguments_fail_setup_with_a_clean_message(pytester, decorator, message):
    result = run_marked(pytester, decorator)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a*",
            "invalid @pytest.mark.chaos on test_bad.py::test_a:",
            message,
        ]
    )


def test_every_problem_is_reported_at_once(pytester: pytest.Pytester):
    result = run_marked(pytester, "@pytest.mark.chaos('missing.yaml', 7, sede=1)")
    result.stdout.fnmatch_lines(
        [
            "invalid @pytest.mark.chaos on test_bad.py::test_a:",
            "  unexpected keyword argument 'sede'; did you mean 'seed'?",
            f"  argument 1: no such file or folder 'missing.yaml' (looked in {pytester.path})",
            "  argument 2: 7 (int) is not a config source: *",
        ]
    )


def test_an_invalid_config_fails_setup_with_the_validation_errors(pytester: pytest.Pytester):
    bad = "apiVersion: networking.istio.io/v1\\nkind: VirtualService\\nmetadata: {name: x}\\nspec: {hosts: [x], http: [{timeout: 2s}]}\\n"
    result = run_marked(pytester, f'@pytest.mark.chaos("{bad}")')
    result.stdout.fnmatch_lines(
        [
            "the @pytest.mark.chaos config of test_bad.py::test_a is invalid:",
            "1 configuration error:",
            "  <apply>*: error: VirtualService/default/x: spec.http[[]0[]]: HTTP route, redirect or "
            "direct_response is required",
        ]
    )


def test_the_marker_applies_without_the_chaos_fixture_and_only_for_its_test(inner: pytest.Pytester):
    inner.makepyfile(
        f"""
        import pytest

        @pytest.mark.chaos("{VS}")
        def test_marked(chaos_proxy):
            (vs,) = chaos_proxy.validation.mesh.virtual_services
            assert vs.http[0].timeout == 2

        def test_unmarked(chaos_proxy):
            assert chaos_proxy.validation.mesh.virtual_services == ()
        """
    )
    inner.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


def test_the_marker_seed_replaces_the_derived_seed(inner: pytest.Pytester):
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.chaos(seed=42)
        def test_seeded(chaos):
            assert chaos.seed == 42

        def test_derived(chaos):
            assert chaos.seed != 42 and chaos.session_seed == 5
        """
    )
    inner.runpytest("-p", "no:cacheprovider", "--chaos-seed=5").assert_outcomes(passed=2)


def test_marker_help_is_registered(pytester: pytest.Pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines([f"@pytest.mark.{MARKER_HELP.replace('[', '[[]')}"])


def test_the_docs_quote_the_registered_marker_text():
    docs = Path(__file__).resolve().parents[2] / "docs" / "pytest.md"
    assert f"@pytest.mark.{MARKER_HELP}\n" in docs.read_text(encoding="utf-8")
