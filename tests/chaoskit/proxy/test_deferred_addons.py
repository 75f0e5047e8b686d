"""mitmproxy's default addons are imported only when asked for (chaoskit.proxy.deferred_addons).

Each test runs in a fresh interpreter: whether a package's ``__init__`` has run is a property of
the whole process, and this one imported mitmproxy long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

#: modules only the default addons chaoskit never uses import
HEAVY = ("flask", "ldap3", "werkzeug", "mitmproxy.addons.proxyauth", "mitmproxy.addons.onboarding")


def run(code: str, *flags: str) -> Any:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    result = subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded: Any = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_the_proxy_imports_without_the_default_addons_and_still_starts() -> None:
    out = run(
        f"""
        import json, sys, tempfile
        from chaoskit.proxy.api import Proxy
        from chaoskit.proxy import deferred_addons
        with Proxy(state_dir=tempfile.mkdtemp()) as proxy:
            started = bool(proxy.url)
        print(json.dumps({{
            "deferred": deferred_addons.is_deferred(),
            "heavy": [m for m in {HEAVY!r} if m in sys.modules],
            "started": started,
        }}))
        """
    )
    assert out == {"deferred": True, "heavy": [], "started": True}


def test_every_name_of_the_package_is_there_when_asked_for() -> None:
    plain = run(
        """
        import json
        import mitmproxy.addons
        print(json.dumps(sorted(type(a).__name__ for a in mitmproxy.addons.default_addons())))
        """
    )
    deferred = run(
        """
        import json, sys
        import chaoskit.proxy
        from chaoskit.proxy import deferred_addons
        import mitmproxy.addons
        before = deferred_addons.is_deferred()
        dumper = mitmproxy.addons.dumper.Dumper.__name__  # a submodule, read as an attribute
        still = deferred_addons.is_deferred()
        from mitmproxy.addons import default_addons
        listed = sorted(type(a).__name__ for a in default_addons())
        try:
            mitmproxy.addons.no_such_thing
            missing = ""
        except AttributeError as e:
            missing = str(e)
        print(json.dumps({
            "before": before, "dumper": dumper, "still": still, "listed": listed,
            "after": deferred_addons.is_deferred(), "missing": missing,
            "same": mitmproxy.addons.default_addons is default_addons,
        }))
        """
    )
    assert deferred == {
        "before": True, "dumper": "Dumper", "still": True, "listed": plain, "after": False,
        "missing": "module 'mitmproxy.addons' has no attribute 'no_such_thing'", "same": True,
    }  # fmt: skip


def test_two_threads_asking_at_once_both_get_the_package() -> None:
    out = run(
        """
        import json, threading
        import chaoskit.proxy
        from chaoskit.proxy import deferred_addons
        import mitmproxy.addons
        deferred = deferred_addons.is_deferred()  # else the threads would test nothing
        got, go = [], threading.Barrier(4)
        def ask():
            go.wait()
            got.append(len(mitmproxy.addons.default_addons()))
        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join(60)
        print(json.dumps({"deferred": deferred, "got": got}))
        """
    )
    got = out["got"]
    assert out["deferred"] is True
    assert len(got) == 4 and len(set(got)) == 1 and got[0] > 20


def test_the_dependencies_warnings_do_not_escape_the_load_under_error_filters() -> None:
    out = run(
        """
        import json
        import chaoskit.proxy
        from chaoskit.proxy import deferred_addons
        deferred = deferred_addons.is_deferred()  # so the load below is the deferred one
        from mitmproxy.tools.web.master import WebMaster  # imports what mitmweb needs
        from mitmproxy.addons import default_addons
        print(json.dumps([deferred, len(default_addons())]))
        """,
        "-W", "error::DeprecationWarning",
    )  # fmt: skip
    assert out[0] is True and out[1] > 20


def test_an_already_imported_package_is_left_alone() -> None:
    out = run(
        """
        import json
        import mitmproxy.addons
        from chaoskit.proxy import deferred_addons
        print(json.dumps([deferred_addons.defer(), deferred_addons.is_deferred()]))
        """
    )
    assert out == [False, False]
