"""Kubernetes manifests as the registry: Services and Deployments, run as local processes.

A repository that runs on Istio keeps its services as Kubernetes ``Service`` and ``Deployment``
manifests (Istio's own Bookinfo: ``samples/bookinfo/platform/kube/bookinfo.yaml``), not as
ServiceEntries. Istio's registry is built from them: a Service's ports are the service's ports
(protocol chosen from ``appProtocol`` or the port name's prefix, Istio's "protocol selection"),
and every pod its selector matches is an endpoint carrying its pod template's labels — which
is what DestinationRule subsets select (``version: v1``).

chaoskit has no pods: a :class:`LocalWorkloads` resource says where each Deployment runs on this
machine, and :func:`as_registry` turns the manifests into the ServiceEntries and
WorkloadEntries the rest of chaoskit already understands (each with the manifest's file and
line, so messages point at what the user wrote). Everything a manifest holds that has no
meaning without a cluster (replicas, containers, probes…) is accepted and ignored.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from chaoskit.config.fields import Fields, did_you_mean
from chaoskit.config.issues import Issues
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import Endpoint, ServiceEntry, ServicePort, WorkloadEntry
from chaoskit.config.yamlsource import Location

#: Istio's protocol selection by port name prefix (``http``, ``http-web``, ``grpc-api``...);
#: ``appProtocol`` takes precedence (https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
PROTOCOLS = {
    "http": "HTTP", "http2": "HTTP2", "https": "HTTPS", "grpc": "GRPC", "grpc-web": "GRPC-Web",
    "tcp": "TCP", "tls": "TLS", "udp": "UDP", "mongo": "Mongo", "mysql": "MySQL",
    "redis": "Redis",
}  # fmt: skip
#: Istio's ports skipped by protocol sniffing: TCP when the name says nothing (SMTP, DNS, MySQL,
#: MongoDB).
_WELL_KNOWN_TCP = frozenset({25, 53, 3306, 27017})
_ADDRESS = re.compile(r"(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})")


@dataclasses.dataclass(frozen=True, slots=True)
class KubeServicePort:
    name: str
    port: int
    protocol: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class KubeService(Resource):
    """A Kubernetes ``v1 Service``: the ports and the selector of a registry service."""

    KIND = "Service"

    ports: tuple[KubeServicePort, ...] = ()
    #: ``None``: no selector (endpoints managed by hand in Kubernetes; none here)
    selector: Mapping[str, str] | None = None
    external_name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class KubeDeployment(Resource):
    """A Kubernetes ``apps/v1 Deployment``: a workload, with its pods' labels and identity."""

    KIND = "Deployment"

    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    service_account: str = "default"


@dataclasses.dataclass(frozen=True, slots=True)
class KubeServiceAccount(Resource):
    KIND = "ServiceAccount"


@dataclasses.dataclass(frozen=True, slots=True)
class LocalWorkload:
    """Where one Deployment runs here: every Service port on ``port``, or by port name."""

    name: str
    address: str
    port: int | None
    ports: Mapping[str, int]
    location: Location


@dataclasses.dataclass(frozen=True, slots=True)
class LocalWorkloads(Resource):
    """chaoskit's kind: the Deployments of this namespace, mapped to local addresses."""

    KIND = "LocalWorkloads"

    workloads: tuple[LocalWorkload, ...] = ()


# -- parsers (the loader calls these with the object's spec) ----------------------------------


def parse_kube_service(
    spec: Fields | None, api_version: str, metadata: Metadata, location: Location
) -> KubeService:
    if spec is None:
        return KubeService(api_version, metadata, location)
    ports = []
    for pf in spec.objs("ports"):
        number = pf.int("port", required=True, minimum=1, maximum=65535)
        name = pf.str("name") or (f"port-{number}" if number else "")
        app_protocol = pf.str("appProtocol")
        if pf.str("protocol") in ("UDP", "SCTP"):
            continue  # not traffic a sidecar proxies
        pf.accept("targetPort", "nodePort")
        pf.done()
        if number is not None:
            ports.append(KubeServicePort(name, number, _protocol(number, name, app_protocol)))
    selector = spec.str_map("selector") if spec.has("selector") else None
    external = spec.str("externalName") if spec.str("type") == "ExternalName" else None
    spec.accept(*spec.data)  # clusterIP, sessionAffinity...: no meaning here
    return KubeService(api_version, metadata, location, tuple(ports), selector, external)


def parse_kube_deployment(
    spec: Fields | None, api_version: str, metadata: Metadata, location: Location
) -> KubeDeployment:
    labels: dict[str, str] = {}
    account = "default"
    template = spec.obj("template") if spec is not None else None
    if template is not None:
        if (meta := template.obj("metadata")) is not None:
            labels = meta.str_map("labels", scalars_as_text=True)
            meta.accept(*meta.data)
        if (pod := template.obj("spec")) is not None:
            account = pod.str("serviceAccountName") or pod.str("serviceAccount") or "default"
            pod.accept(*pod.data)
        template.accept(*template.data)
    if spec is not None:
        spec.accept(*spec.data)
    if not labels and spec is not None:
        spec.warn("template", "the pod template has no labels: no Service can select it")
    return KubeDeployment(api_version, metadata, location, labels, account)


def parse_service_account(
    spec: Fields | None, api_version: str, metadata: Metadata, location: Location
) -> KubeServiceAccount:
    return KubeServiceAccount(api_version, metadata, location)


def parse_local_workloads(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> LocalWorkloads:
    out = []
    names: set[str] = set()
    for wf in spec.objs("workloads", required=True):
        name = wf.str("name", required=True)
        address = wf.str("address") or "127.0.0.1"
        port = wf.int("port", minimum=1, maximum=65535)
        ports: dict[str, int] = {}
        if (pf := wf.obj("ports")) is not None:
            for key in list(pf.data):
                number = pf.int(key, minimum=1, maximum=65535)
                if number is not None:
                    ports[key] = number
            pf.done()
        wf.done()
        if port is None and not ports:
            wf.error(None, 'either "port" or "ports" is required: where the workload listens')
        if name is None:
            continue
        if name in names:
            wf.error("name", f"workload {name!r} is mapped twice")
        names.add(name)
        out.append(LocalWorkload(name, address, port, ports, wf.loc()))
    spec.done()
    return LocalWorkloads(api_version, metadata, location, tuple(out))


def parse_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:9081`` / ``[::1]:9081`` → (address, port); raises ValueError."""
    m = _ADDRESS.fullmatch(text)
    if m is None or not 1 <= int(m["port"]) <= 65535:
        raise ValueError(f"{text!r} is not ADDRESS:PORT")
    return m["host"].strip("[]"), int(m["port"])


def _protocol(number: int, name: str, app_protocol: str | None) -> str | None:
    """Istio's ``ConvertProtocol``: ``appProtocol``; else ``grpc-web…``; else the name up to
    its first ``-``; else TCP on a well-known non-HTTP port; else ``None`` (Istio sniffs)."""
    if app_protocol:
        return PROTOCOLS.get(app_protocol.lower())
    lower = name.lower()
    if lower.startswith("grpc-web"):
        return PROTOCOLS["grpc-web"]
    found = PROTOCOLS.get(lower.split("-", 1)[0])
    if found is None and number in _WELL_KNOWN_TCP:
        return "TCP"
    return found


# -- manifests → registry --------------------------------------------------------------------

KUBE_KINDS = (KubeService, KubeDeployment, KubeServiceAccount, LocalWorkloads)


def as_registry(resources: Iterable[Resource], issues: Issues | None) -> list[Resource]:
    """``resources`` with Kubernetes Services and Deployments turned into ServiceEntries and
    WorkloadEntries, at the position of each Service / Deployment (so a ServiceEntry written
    later for the same name still replaces it, kubectl-style)."""
    rs = list(resources)
    if not any(isinstance(r, KUBE_KINDS) for r in rs):
        return rs
    deployments = [r for r in rs if isinstance(r, KubeDeployment)]
    mapped: dict[tuple[str, str], LocalWorkload] = {}
    for lw in (r for r in rs if isinstance(r, LocalWorkloads)):
        for w in lw.workloads:
            mapped[(lw.namespace, w.name)] = w
    _check_mapping(mapped, deployments, issues)
    out: list[Resource] = []
    for r in rs:
        if isinstance(r, KubeService):
            entry = _service_entry(r, deployments, mapped, issues)
            if entry is not None:
                out.append(entry)
        elif isinstance(r, KubeDeployment):
            out.append(_workload_entry(r, mapped.get((r.namespace, r.name))))
        elif not isinstance(r, KUBE_KINDS):
            out.append(r)
    return out


def _selected(svc: KubeService, deployments: list[KubeDeployment]) -> list[KubeDeployment]:
    if not svc.selector:
        return []
    return [
        d
        for d in deployments
        if d.namespace == svc.namespace
        and all(d.labels.get(k) == v for k, v in svc.selector.items())
    ]


def _service_entry(
    svc: KubeService,
    deployments: list[KubeDeployment],
    mapped: Mapping[tuple[str, str], LocalWorkload],
    issues: Issues | None,
) -> ServiceEntry | None:
    if svc.external_name is not None:
        if issues is not None:
            issues.warning(
                svc.location, svc.ref, "spec.type",
                "an ExternalName Service is not registered; reach the external name directly "
                "(ALLOW_ANY) or declare it with a ServiceEntry",
            )  # fmt: skip
        return None
    ports = tuple(ServicePort(p.port, p.name, p.protocol) for p in svc.ports)
    endpoints = []
    for d in _selected(svc, deployments):
        local = mapped.get((d.namespace, d.name))
        if local is None:
            continue  # warned once per Deployment by _check_mapping
        by_name = {
            p.name: local.ports.get(p.name, local.ports.get(str(p.port), local.port))
            for p in svc.ports
        }
        endpoints.append(
            Endpoint(
                address=local.address,
                ports={k: v for k, v in by_name.items() if v is not None},
                labels=dict(d.labels),
                service_account=d.service_account,
            )
        )
    return ServiceEntry(
        svc.api_version, svc.metadata, svc.location,
        hosts=(svc.name,), ports=ports, mesh_location="MESH_INTERNAL", resolution="STATIC",
        endpoints=tuple(endpoints), export_to=_export_to(svc), from_kubernetes=True,
    )  # fmt: skip


#: The annotation that scopes a Kubernetes Service like ServiceEntry ``exportTo``.
EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"


def _export_to(svc: KubeService) -> tuple[str, ...]:
    """The Service's ``networking.istio.io/exportTo`` annotation, comma-separated, as Istio's
    Kubernetes registry reads it (``pilot/pkg/serviceregistry/kube/conversion.go``)."""
    text = svc.metadata.annotations.get(EXPORT_TO_ANNOTATION, "")
    return tuple(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))


def _workload_entry(d: KubeDeployment, local: LocalWorkload | None) -> WorkloadEntry:
    return WorkloadEntry(
        d.api_version, d.metadata, d.location,
        address=local.address if local is not None else None,
        labels=dict(d.labels), service_account=d.service_account,
    )  # fmt: skip


def _check_mapping(
    mapped: Mapping[tuple[str, str], LocalWorkload],
    deployments: list[KubeDeployment],
    issues: Issues | None,
) -> None:
    if issues is None:
        return
    known = {(d.namespace, d.name) for d in deployments}
    for d in deployments:
        if (d.namespace, d.name) not in mapped:
            issues.warning(
                d.location, d.ref, "metadata.name",
                f"no LocalWorkloads entry says where {d.name} runs: it is no endpoint of any "
                "Service here (requests that need it get 503 no healthy upstream)",
            )  # fmt: skip
    for (namespace, name), w in mapped.items():
        if (namespace, name) not in known:
            names = [n for ns, n in known if ns == namespace]
            issues.warning(
                w.location, f"LocalWorkloads/{namespace}", "spec.workloads",
                f"no Deployment {name!r} in namespace {namespace}{did_you_mean(name, names)}",
            )  # fmt: skip
