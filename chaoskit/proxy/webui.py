"""mitmweb's UI beside the proxy: only from a mitmproxy whose UI needs its token.

mitmproxy before 11.1.2 serves mitmweb's API with no authentication (CVE-2025-23217): anyone who
can send a request to it — including through the proxy itself, three requests — can set options
that write and load a script, i.e. run code as the proxy's user. Those releases are the newest pip
installs on Python 3.11 (every fixed release needs Python >= 3.12). So chaoskit serves the UI
(``--web``) only from a fixed mitmproxy, refuses to run inside an unfixed ``mitmweb``, and in any
case never forwards a request to the UI's port (it is one of the proxy's own listeners,
:mod:`chaoskit.proxy.pipeline`).
"""

from __future__ import annotations

import re
from typing import Any

from mitmproxy import version

#: The first mitmproxy whose web UI needs a token (GHSA-wg33-5h85-7q5p).
FIXED_VERSION = (11, 1, 2)


def parse_version(text: str) -> tuple[int, ...]:
    """``"12.3.1"`` → ``(12, 3, 1)``; ``"11.1.0.dev5"`` → ``(11, 1, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def web_ui_is_safe(mitmproxy_version: str = version.VERSION) -> bool:
    return parse_version(mitmproxy_version) >= FIXED_VERSION


def refusal(mitmproxy_version: str = version.VERSION) -> str:
    """Why the UI is refused on this mitmproxy, in one paragraph a user can act on."""
    fixed = ".".join(map(str, FIXED_VERSION))
    return (
        f"mitmproxy {mitmproxy_version}'s web UI has no authentication (CVE-2025-23217: anyone "
        f"who can reach it, through the proxy too, can run code as you); it needs mitmproxy >= "
        f"{fixed}, which needs Python >= 3.12 (re-create the venv with python3.12: "
        "scripts/_venv.sh picks it when it is installed)"
    )


def is_web_master(master: Any) -> bool:
    """Is ``master`` mitmweb's (``mitmweb -s``, or ``chaoskit proxy --web``)?"""
    return any(cls.__name__ == "WebMaster" for cls in type(master).__mro__)


def web_url(master: Any) -> str | None:
    """The UI's URL with its token (mitmproxy's own ``WebMaster.web_url``), if it has one."""
    url = getattr(master, "web_url", None)
    return url if isinstance(url, str) else None


def web_address(master: Any) -> tuple[str, int] | None:
    """Where the UI listens, for loop detection: ``(web_host, web_port)`` of a WebMaster."""
    if not is_web_master(master):
        return None
    try:
        return str(master.options.web_host), int(master.options.web_port)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
