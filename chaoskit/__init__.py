"""chaoskit: Istio traffic management and fault injection for HTTP services, without Kubernetes.

``chaoskit.Proxy`` (the in-process proxy) is imported on first use, so that tools which only
validate configuration never pay for importing mitmproxy.
"""

from typing import TYPE_CHECKING, Any

from chaoskit.errors import ChaosKitError, ConfigError, ProxyError

if TYPE_CHECKING:
    from chaoskit.proxy.api import Proxy

__version__ = "0.1.0"

__all__ = ["ChaosKitError", "ConfigError", "Proxy", "ProxyError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Proxy":
        from chaoskit.proxy.api import Proxy  # noqa: PLC0415 - deliberately lazy

        return Proxy
    raise AttributeError(f"module 'chaoskit' has no attribute {name!r}")
