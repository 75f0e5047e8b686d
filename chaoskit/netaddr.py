"""Address checks shared by the CLI and the proxy (no mitmproxy here, so both can import it)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Is ``host`` (a bare host: no port, no brackets) ``localhost`` or a loopback IP literal?

    The one rule for "stays on this machine" wherever chaoskit decides where it may listen
    (the admin listener must, the proxy listener is warned about): no DNS lookup, so a name
    that merely resolves to 127.0.0.1 does not count."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
