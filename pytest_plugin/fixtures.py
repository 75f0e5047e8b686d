"""Fixtures, in pairs: one proxy per pytest process (session scope), one handle per test.

``chaos_proxy`` starts on first use and serves every test of the session (or of one xdist
worker); ``chaos`` layers a test's config over the base, resets records, counters and seeded
streams, and undoes it all at the end, so tests never see each other's faults.
``chaos_config`` and ``chaos_proxy_options`` are there to be overridden in a ``conftest.py``.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .markers import chaos_mark_key, search_dirs

if TYPE_CHECKING:
    from chaoskit.proxy.api import Proxy

    from .handle import Chaos

# The handle (and through it chaoskit's config, requests …) is imported by the ``chaos`` fixture,
# not here: this module loads with the plugin in every pytest run of the venv, and a run whose
# tests never use chaos should not pay for it (docs/performance.md, "The pytest plugin's cost").


@dataclasses.dataclass
class Settings:
    """What the command line and the ini file decided for this session."""

    seed: int
    #: seconds evidence readers wait for requests in flight (``chaos_settle_timeout``)
    settle_timeout: float
    #: "given", "random", "last", "last-missing" (asked for last, none cached) or "controller"
    seed_origin: str = "given"
    base_config: list[Any] = dataclasses.field(default_factory=list)
    report_dir: Path | None = None
    #: set once the proxy runs (for the header and the summary)
    proxy_url: str = ""
    admin_url: str = ""


settings_key = pytest.StashKey[Settings]()

handle_key = pytest.StashKey["Chaos"]()


def seed_for_test(session_seed: int, nodeid: str) -> int:
    """A test's seed: the session seed shifted by ``crc32(nodeid)`` (as pytest-randomly does), so
    a test gets the same decisions whatever runs before it, in any process."""
    return (session_seed + zlib.crc32(nodeid.encode())) % 2**32


@pytest.fixture(scope="session")
def chaos_config(pytestconfig: pytest.Config) -> list[Any]:
    """The session's base config: ``--chaos-config`` paths, else the ``chaos_config`` ini paths.

    Override it in a ``conftest.py`` to build the base config in Python (for example with the
    ports of fake upstreams started by another session fixture).
    """
    return list(pytestconfig.stash[settings_key].base_config)


@pytest.fixture(scope="session")
def chaos_proxy_options() -> dict[str, Any]:
    """Extra keyword arguments for :class:`chaoskit.proxy.api.Proxy`, such as
    ``gateway_ports={8080: 0}``; override it in a ``conftest.py``."""
    return {}


@pytest.fixture(scope="session")
def chaos_proxy(
    pytestconfig: pytest.Config,
    chaos_config: list[Any],
    chaos_proxy_options: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    """The running proxy: one per pytest process (one per xdist worker), started on first use,
    stopped at the end of the session; its CA lives under the session's temporary directory."""
    # Imported here so mitmproxy loads only when a test needs the proxy (not in every run). Two
    # of its dependencies warn at import time; those warnings are theirs, not the user's tests',
    # and under `filterwarnings = error` they would stop the session. Only those two are
    # silenced (exact message and module), once, on pytest's main thread: any other deprecation
    # still reaches the user's filters. (Importing chaoskit.proxy defers the default addons
    # that import them: chaoskit.proxy.deferred_addons.)
    from chaoskit.proxy.deferred_addons import dependency_warnings_silenced  # noqa: PLC0415

    with dependency_warnings_silenced():
        from chaoskit.proxy.api import Proxy  # noqa: PLC0415
    from chaoskit.errors import ConfigError  # noqa: PLC0415

    settings = pytestconfig.stash[settings_key]
    options: dict[str, Any] = {"admin_port": 0, **chaos_proxy_options}
    options.setdefault("state_dir", tmp_path_factory.mktemp("chaoskit"))
    try:
        proxy = Proxy(*chaos_config, seed=settings.seed, **options)
    except ConfigError as e:
        pytest.fail(f"the chaoskit base config (chaos_config) is invalid:\n{e}", pytrace=False)
    proxy.start()
    settings.proxy_url = proxy.url
    settings.admin_url = proxy.admin_url if options.get("admin_port") is not None else ""
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def chaos(request: pytest.FixtureRequest, chaos_proxy: Proxy) -> Iterator[Chaos]:
    """This test's handle: apply faults, send traffic through the proxy, assert on what happened.

    The config a test applies (``@pytest.mark.chaos``, ``chaos.apply``, ``chaos.fault`` …) is
    layered over the session's base config and undone at the end of the test.
    """
    from chaoskit.errors import ConfigError  # noqa: PLC0415

    from .handle import Chaos  # noqa: PLC0415 - see the note at the top

    item = request.node
    settings = request.config.stash[settings_key]
    mark = item.stash.get(chaos_mark_key, None)
    seed = mark.seed if mark is not None and mark.seed is not None else None
    handle = Chaos(
        chaos_proxy,
        seed=seed_for_test(settings.seed, item.nodeid) if seed is None else seed,
        session_seed=settings.seed,
        nodeid=item.nodeid,
        search=search_dirs(item),
        mark_sources=mark.sources if mark is not None else (),
        settle_timeout=settings.settle_timeout,
    )
    try:
        handle.begin()
    except ConfigError as e:
        pytest.fail(
            f"the @pytest.mark.chaos config of {item.nodeid} is invalid:\n{e}", pytrace=False
        )
    item.stash[handle_key] = handle
    try:
        yield handle
    finally:
        handle.end()


@pytest.fixture(autouse=True)
def _chaos_marked(request: pytest.FixtureRequest) -> None:
    """A test with ``@pytest.mark.chaos`` gets its config even if it never asks for ``chaos``."""
    if request.node.stash.get(chaos_mark_key, None) is not None:
        request.getfixturevalue("chaos")
