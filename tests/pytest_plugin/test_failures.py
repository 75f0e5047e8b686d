"""A ConfigError in a test, a fixture or a marker: the message and the user's line, no internals."""

from __future__ import annotations

import pytest

NO_CACHE = ("-p", "no:cacheprovider")

#: Text only chaoskit's own frames print: its folders, and locals of the handle and the proxy.
INTERNALS = ("pytest_plugin/", "chaoskit/proxy/", "chaoskit/config/", "self._layers", "resolved")


def assert_no_internals(result: pytest.RunResult) -> None:
    out = result.stdout.str()
    for text in INTERNALS:
        assert text not in out, f"{text!r} in the report:\n{out}"


def test_a_config_error_in_a_test_shows_its_line_and_the_message(inner: pytest.Pytester):
    inner.makepyfile(
        test_a="""
        def test_a(chaos):
            chaos.fault("paymnts", abort=503)
        """
    )
    result = inner.runpytest(*NO_CACHE, "-l")  # -l: locals of every frame shown
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       chaos.fault("paymnts", abort=503)',
            "E       chaoskit.errors.ConfigError: 1 configuration error:",
            "E         *spec.host: host 'paymnts' *; did you mean \"payments\"?",
            "test_a.py:2: ConfigError",
        ]
    )
    assert_no_internals(result)


def test_a_config_error_in_a_users_fixture_shows_the_fixtures_line(inner: pytest.Pytester):
    inner.makepyfile(
        test_b="""
        import pytest

        BAD = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "x"}, "spec": {"hosts": []}}

        @pytest.fixture
        def broken(chaos):
            chaos.apply(BAD)

        def test_b(broken):
            pass
        """
    )
    result = inner.runpytest(*NO_CACHE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            ">       chaos.apply(BAD)",
            "E       chaoskit.errors.ConfigError: 1 configuration error:",
            "test_b.py:7: ConfigError",
        ]
    )
    assert_no_internals(result)


def test_fulltrace_still_shows_every_frame(inner: pytest.Pytester):
    inner.makepyfile(
        test_c="""
        def test_c(chaos):
            chaos.apply({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "spec": {}})
        """
    )
    result = inner.runpytest(*NO_CACHE, "--fulltrace")
    result.assert_outcomes(failed=1)
    assert "chaoskit/proxy/" in result.stdout.str()


def test_other_errors_keep_their_traceback(inner: pytest.Pytester):
    inner.makepyfile(
        test_d="""
        def test_d(chaos):
            chaos.fault("payments", abort=503, percent="half")
        """
    )
    result = inner.runpytest(*NO_CACHE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pytest_plugin/resources.py:*: TypeError"])
