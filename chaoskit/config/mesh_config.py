"""``MeshConfig``: the mesh-wide defaults a route falls back on when it sets none.

Istio changed these over time (istio/api ``virtual_service.proto`` documented a 15 s route timeout
until 2020; ``pilot/pkg/networking/core/route/retry/retry.go`` now retries twice): the ``classic``
preset chaoskit was built against gives a route with no ``timeout`` 15 s and no ``retries`` none,
while current Istio has no timeout and retries twice. Tests written against one behave differently
under the other, so the choice is explicit: ``defaults: classic`` (the default) or
``istio-current``, and any field set next to it overrides that preset.

``timeout: 0s`` (or ``none``) disables the route timeout, as ``0s`` does in Istio. ``retries``
replaces the preset's policy as a whole, read like a route's ``retries`` (``attempts: 0`` means
no retries; ``retryOn`` unset means Istio's default list).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chaoskit.config.fields import Fields
from chaoskit.config.http_route import DEFAULT_RETRY_ON, HTTPRetry, parse_retry
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.yamlsource import Location

CLASSIC = "classic"
ISTIO_CURRENT = "istio-current"
PRESETS = (CLASSIC, ISTIO_CURRENT)
#: ``outboundTrafficPolicy.mode``, the same enum for the mesh and a Sidecar (istio/api
#: ``mesh/v1alpha1/config.proto`` and ``networking/v1alpha3/sidecar.proto``).
ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"


@dataclasses.dataclass(frozen=True, slots=True)
class MeshDefaults:
    """Resolved defaults: ``route_timeout`` None = no timeout, ``retry`` None = no retries."""

    route_timeout: float | None
    retry: HTTPRetry | None
    outbound_policy: str
    connect_timeout: float


CLASSIC_DEFAULTS = MeshDefaults(
    route_timeout=15.0,
    retry=None,
    outbound_policy=ALLOW_ANY,
    connect_timeout=10.0,
)
ISTIO_CURRENT_DEFAULTS = MeshDefaults(
    route_timeout=None,
    retry=HTTPRetry(attempts=2, retry_on=DEFAULT_RETRY_ON),
    outbound_policy=ALLOW_ANY,
    connect_timeout=10.0,
)
_PRESET_DEFAULTS = {CLASSIC: CLASSIC_DEFAULTS, ISTIO_CURRENT: ISTIO_CURRENT_DEFAULTS}


@dataclasses.dataclass(frozen=True, slots=True)
class MeshConfig(Resource):
    """As written: ``None`` means "not set, keep the preset's value"."""

    KIND = "MeshConfig"

    defaults: str = CLASSIC
    #: ``0.0`` when written ``0s`` or ``none``: the route timeout is disabled.
    timeout: float | None = None
    #: ``attempts == 0`` when written ``attempts: 0``: no retries.
    retries: HTTPRetry | None = None
    outbound_policy: str | None = None
    connect_timeout: float | None = None


def _parse_timeout(spec: Fields) -> float | None:
    if spec.data.get("timeout") == "none":
        spec.accept("timeout")
        return 0.0
    return spec.duration("timeout", allow_zero=True)


def _parse_outbound(f: Fields) -> str | None:
    mode = f.enum("mode", (ALLOW_ANY, REGISTRY_ONLY))
    f.done()
    if mode is None and not f.has("mode"):
        # Istio's enum zero value: a block without mode blocks unknown hosts.
        f.warn(
            None,
            "outboundTrafficPolicy without mode means REGISTRY_ONLY (as in Istio); "
            "write mode explicitly",
        )
        return REGISTRY_ONLY
    return mode


def parse_mesh_config(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> MeshConfig:
    """Read a MeshConfig ``spec``; one per mesh, which the cross-resource checks enforce."""
    defaults = spec.enum("defaults", PRESETS) or CLASSIC
    timeout = _parse_timeout(spec)
    retries = parse_retry(r) if (r := spec.obj("retries")) is not None else None
    outbound = _parse_outbound(o) if (o := spec.obj("outboundTrafficPolicy")) is not None else None
    connect = spec.duration("connectTimeout")
    spec.done()
    config = MeshConfig(
        api_version=api_version,
        metadata=metadata,
        location=location,
        defaults=defaults,
        timeout=timeout,
        retries=retries,
        outbound_policy=outbound,
        connect_timeout=connect,
    )
    eff = resolve(config)
    retry = eff.retry
    if eff.route_timeout and retry is not None and retry.per_try_timeout is not None:
        budget = (retry.attempts + 1) * retry.per_try_timeout
        if budget > eff.route_timeout:
            spec.warn(
                "retries",
                f"{retry.attempts + 1} attempts × perTryTimeout "
                f"({budget:g}s) exceed the default route timeout ({eff.route_timeout:g}s): "
                "the last attempts are cut off",
            )
    return config


def resolve(config: MeshConfig) -> MeshDefaults:
    """One MeshConfig's preset with its explicit fields applied."""
    base = _PRESET_DEFAULTS.get(config.defaults, CLASSIC_DEFAULTS)
    retry = base.retry
    if config.retries is not None:
        r = config.retries
        retry = (
            None
            if r.attempts <= 0
            else (
                r if r.retry_on is not None else dataclasses.replace(r, retry_on=DEFAULT_RETRY_ON)
            )
        )
    timeout = base.route_timeout if config.timeout is None else (config.timeout or None)
    return MeshDefaults(
        route_timeout=timeout,
        retry=retry,
        outbound_policy=config.outbound_policy or base.outbound_policy,
        connect_timeout=config.connect_timeout or base.connect_timeout,
    )


def effective_defaults(mesh_configs: Sequence[MeshConfig]) -> MeshDefaults:
    """The defaults in force: classic without a MeshConfig, else the first one's.

    More than one MeshConfig is an error the cross-resource checks report; until then the first
    (in load order) wins so the result is still deterministic.
    """
    if not mesh_configs:
        return CLASSIC_DEFAULTS
    return resolve(mesh_configs[0])
