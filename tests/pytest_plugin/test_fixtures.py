"""The fixture pair: one lazily started proxy per session, one isolated handle per test."""

from __future__ import annotations

import pytest
from chaoskit_pytest.fixtures import seed_for_test

NO_CACHE = ("-p", "no:cacheprovider")


def test_one_proxy_serves_the_whole_session(inner: pytest.Pytester):
    inner.makepyfile(
        """
        seen = []

        def test_a(chaos_proxy, chaos):
            seen.append(chaos_proxy)
            assert chaos.proxy is chaos_proxy

        def test_b(chaos_proxy):
            assert seen == [chaos_proxy]
            assert chaos_proxy.runtime is not None
        """
    )
    result = inner.runpytest(*NO_CACHE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["chaoskit: proxy http://127.0.0.1:* (admin http://127.0.0.1:*), seed=*"]
    )


def test_the_proxy_starts_only_when_a_test_needs_it(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest(*NO_CACHE)
    result.assert_outcomes(passed=1)
    assert "chaoskit: proxy" not in result.stdout.str()


def test_the_ca_lives_under_the_session_temp_dir(inner: pytest.Pytester):
    inner.makepyfile(
        """
        def test_ca(chaos, tmp_path_factory):
            assert chaos.ca_path.is_file()
            assert chaos.ca_path.is_relative_to(tmp_path_factory.getbasetemp())
        """
    )
    inner.runpytest(*NO_CACHE).assert_outcomes(passed=1)


def test_tests_never_see_each_others_faults_records_or_counters(inner: pytest.Pytester):
    inner.makepyfile(
        """
        def test_faulted(chaos):
            chaos.route_fault("payments", abort=503)
            assert chaos.session().get("http://payments/").status_code == 503
            assert chaos.stats()["fault.aborts_injected"] == 1

        def test_clean(chaos):
            assert chaos.proxy.validation.mesh.virtual_services == ()
            assert chaos.records == [] and chaos.stats() == {}
            assert chaos.session().get("http://payments/").status_code == 200
            (record,) = chaos.records
            assert record.faults == ()
            assert chaos.declared_faults == []
        """
    )
    inner.runpytest(*NO_CACHE).assert_outcomes(passed=2)


def test_each_test_gets_a_seed_derived_from_the_session_seed(inner: pytest.Pytester):
    inner.makepyfile(
        test_seeds="""
        from chaoskit_pytest.fixtures import seed_for_test

        def test_one(chaos, request):
            assert chaos.seed == seed_for_test(11, request.node.nodeid)
            assert chaos.proxy.pipeline.seeds.seed == chaos.seed

        def test_two(chaos):
            assert chaos.seed == seed_for_test(11, "test_seeds.py::test_two")
        """
    )
    inner.runpytest(*NO_CACHE, "--chaos-seed=11").assert_outcomes(passed=2)


def test_seed_for_test_is_stable_and_depends_on_the_node_id():
    assert seed_for_test(5, "t.py::a") == seed_for_test(5, "t.py::a")
    assert seed_for_test(5, "t.py::a") != seed_for_test(5, "t.py::b")
    assert seed_for_test(5, "t.py::a") != seed_for_test(6, "t.py::a")
    assert 0 <= seed_for_test(2**40, "x") < 2**32


def test_chaos_proxy_options_can_be_overridden(inner: pytest.Pytester):
    inner.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def chaos_proxy_options():
            return {"admin_port": None}
        """
    )
    inner.makepyfile(
        """
        import pytest

        def test_no_admin(chaos_proxy):
            with pytest.raises(RuntimeError, match="without an admin listener"):
                chaos_proxy.admin_url
        """
    )
    result = inner.runpytest(*NO_CACHE)
    result.assert_outcomes(passed=1)
    assert "(admin" not in result.stdout.str()


def test_an_invalid_base_config_fixture_fails_cleanly(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def chaos_config():
            return ["apiVersion: networking.istio.io/v1\\nkind: ServiceEntry\\nmetadata: {name: x}\\nspec: {}\\n"]
        """
    )
    pytester.makepyfile("def test_a(chaos): pass\ndef test_b(chaos): pass\n")
    result = pytester.runpytest(*NO_CACHE)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "the chaoskit base config (chaos_config) is invalid:",
            "1 configuration error:",
            "  *spec.hosts*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_sessions_are_closed_when_the_test_ends(inner: pytest.Pytester):
    inner.makepyfile(
        """
        kept = []

        def test_a(chaos):
            s = chaos.session()
            s.get("http://payments/")
            kept.append(s)

        def test_b():
            (s,) = kept
            assert all(not a.poolmanager.pools for a in s.adapters.values())
        """
    )
    inner.runpytest(*NO_CACHE).assert_outcomes(passed=2)
