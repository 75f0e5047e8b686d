"""chaoskit: Istio traffic management and fault injection for HTTP services, without Kubernetes."""

from chaoskit.errors import ChaosKitError, ConfigError, ProxyError

__version__ = "0.1.0"

__all__ = ["ChaosKitError", "ConfigError", "ProxyError", "__version__"]
