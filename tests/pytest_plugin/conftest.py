"""Shared by the plugin's tests: pytester, one fake ``payments`` upstream, and its mesh config.

pytester is enabled from ``pytest_configure`` rather than with ``pytest_plugins = ["pytester"]``:
a run from the repository root collects this folder after start-up, and pytest refuses
``pytest_plugins`` in a conftest loaded that late ("non-top-level conftest").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chaoskit_pytest.fixtures import settings_key

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream
from tests.builders import service_entry

# Importing chaoskit.proxy.api here matters: pytester's in-process runs drop the modules a run
# imported when it ends, and mitmproxy's crypto stack must not be imported afresh by each inner
# run (its enums would no longer match), so it is imported once, in the outer process.


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


def virtual_service(host: str, rules: str, name: str | None = None) -> str:
    """A VirtualService for ``host`` whose ``http`` rules are given as YAML flow text."""
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name or host}}}\nspec:\n  hosts: [{host}]\n  http: {rules}\n"
    )


@pytest.fixture(scope="session")
def _outer_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaoskit-outer")


@pytest.fixture
def chaos_proxy(pytestconfig: pytest.Config, _outer_state_dir: Path) -> Iterator[Proxy]:
    """A proxy per test in this folder, instead of the plugin's one per session.

    mitmproxy hands each new connection to its module-global ``ctx.master``, so two proxies
    cannot run in one process: the proxy of a pytester in-process run would capture the
    connections of a session-wide one. Stopping ours after each test keeps them apart.
    """
    seed = pytestconfig.stash[settings_key].seed
    with Proxy(seed=seed, state_dir=_outer_state_dir) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def payments() -> Iterator[Upstream]:
    with Upstream("payments") as up:
        yield up


@pytest.fixture(scope="session")
def ratings() -> Iterator[Upstream]:
    with Upstream("ratings") as up:
        yield up


@pytest.fixture
def mesh(chaos, payments, ratings):
    """The ``chaos`` handle with ``payments`` and ``ratings`` in the registry."""
    payments.clear()
    ratings.clear()
    payments.fail_first = 0
    chaos.apply(service_entry("payments", payments.port), service_entry("ratings", ratings.port))
    yield chaos
    payments.fail_first = 0


@pytest.fixture
def inner(pytester: pytest.Pytester, payments: Upstream) -> pytest.Pytester:
    """A pytester whose conftest puts ``payments`` in the session's base config."""
    pytester.makeconftest(
        f"""
        import pytest

        PAYMENTS = {service_entry("payments", payments.port)!r}

        @pytest.fixture(scope="session")
        def chaos_config():
            return [PAYMENTS]
        """
    )
    return pytester
