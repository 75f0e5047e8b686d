"""Files and folders of multi-document YAML → typed resources plus every issue found.

Kinds are registered by name (the toxiproxy way): :data:`KINDS` maps each kind to its API group
and the parser that reads its ``spec``. A parser takes ``(spec: Fields, api_version, metadata,
location)`` and returns a frozen resource; it records problems instead of raising. The table
holds the functions themselves, so mypy checks every parser against :data:`Parser`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chaoskit.config.destination_rule import parse_destination_rule
from chaoskit.config.experiment import parse_experiment
from chaoskit.config.fields import Context, Fields, did_you_mean
from chaoskit.config.gateway import parse_gateway
from chaoskit.config.gcpause import gc_paused
from chaoskit.config.issues import Issue, Issues, Severity
from chaoskit.config.kubernetes import (
    parse_kube_deployment,
    parse_kube_service,
    parse_local_workloads,
    parse_service_account,
)
from chaoskit.config.mesh_config import parse_mesh_config
from chaoskit.config.resource import (
    CHAOSKIT_API,
    ISTIO_GROUP,
    ISTIO_VERSIONS,
    Metadata,
    Resource,
    parse_metadata,
)
from chaoskit.config.service_entry import parse_service_entry, parse_workload_entry
from chaoskit.config.sidecar import parse_sidecar
from chaoskit.config.upstream_fault import parse_upstream_fault
from chaoskit.config.virtual_service import parse_virtual_service
from chaoskit.config.yamlsource import (
    Document,
    Location,
    YamlError,
    YMap,
    parse_documents,
    read_documents,
)

Parser = Callable[[Fields, str, Metadata, Location], Resource]

ISTIO = "istio"
CHAOSKIT = "chaoskit"

#: kind → (API family, the parser of its ``spec``).
KINDS: dict[str, tuple[str, Parser]] = {
    "VirtualService": (ISTIO, parse_virtual_service),
    "DestinationRule": (ISTIO, parse_destination_rule),
    "ServiceEntry": (ISTIO, parse_service_entry),
    "WorkloadEntry": (ISTIO, parse_workload_entry),
    "Gateway": (ISTIO, parse_gateway),
    "Sidecar": (ISTIO, parse_sidecar),
    "UpstreamFault": (CHAOSKIT, parse_upstream_fault),
    "MeshConfig": (CHAOSKIT, parse_mesh_config),
    "Experiment": (CHAOSKIT, parse_experiment),
    "LocalWorkloads": (CHAOSKIT, parse_local_workloads),
}

KubeParser = Callable[[Fields | None, str, Metadata, Location], Resource]
#: Kubernetes kinds read as the registry (:mod:`chaoskit.config.kubernetes`), by
#: (apiVersion, kind). Their objects are accepted whole: only what the registry needs is read.
KUBERNETES_KINDS: dict[tuple[str, str], KubeParser] = {
    ("v1", "Service"): parse_kube_service,
    ("apps/v1", "Deployment"): parse_kube_deployment,
    ("v1", "ServiceAccount"): parse_service_account,
}

#: Istio kinds a real mesh folder holds that chaoskit has no use for: warned about, not errors.
OTHER_ISTIO_KINDS = frozenset(
    {
        "EnvoyFilter", "WorkloadGroup", "ProxyConfig", "Telemetry", "PeerAuthentication",
        "AuthorizationPolicy", "RequestAuthentication", "WasmPlugin",
    }
)  # fmt: skip
YAML_SUFFIXES = (".yaml", ".yml")


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """What loading produced: resources in file order, every issue, and the files read."""

    resources: tuple[Resource, ...]
    issues: Issues
    files: tuple[str, ...]
    #: Files that could not be read or are not YAML at all (``validate`` exits 2 for these).
    unreadable: tuple[str, ...] = ()
    #: The warnings (also in ``issues``) for a resource defined in two files of one folder,
    #: which the proxy repeats at start and at each reload.
    duplicates: tuple[Issue, ...] = ()


def _yaml_files_under(folder: Path) -> list[str]:
    """Every ``.yaml``/``.yml`` file below ``folder``, sorted, skipping hidden names; raises
    ``OSError`` when any folder on the way cannot be read (never a partial list)."""

    def fail(error: OSError) -> None:
        raise error

    found: list[str] = []
    for root, dirs, names in os.walk(folder, onerror=fail):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or Path(name).suffix not in YAML_SUFFIXES:
                continue
            full = os.path.join(root, name)
            if os.path.isfile(full):
                found.append(full)
    return sorted(found)


def collect_files(
    paths: Iterable[str | os.PathLike[str]], issues: Issues
) -> tuple[list[str], list[str]]:
    """Expand folders (recursively, sorted) into YAML files; missing paths become issues."""
    files: list[str] = []
    missing: list[str] = []
    for p in paths:
        path = Path(p)
        try:
            path.stat()
        except FileNotFoundError:
            pass  # reported below
        except (OSError, ValueError) as e:  # a name too long, a NUL byte, no permission
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            issues.error(Location(str(path)[:200], 1), "", "", f"cannot read: {reason}")
            missing.append(str(path))
            continue
        if path.is_dir():
            try:
                found = _yaml_files_under(path)
            except OSError as e:
                # Path.rglob skips a folder it cannot open (EMFILE, EACCES) without a word: a
                # reload under descriptor pressure would have swapped in part of the mesh.
                issues.error(Location(str(path), 1), "", "", f"cannot read: {e.strerror or e}")
                missing.append(str(path))
                continue
            if not found:
                issues.error(
                    Location(str(path), 1), "", "", "folder contains no .yaml or .yml files"
                )
                missing.append(str(path))
            files.extend(found)
        elif path.exists():
            files.append(str(path))
        else:
            issues.error(Location(str(path), 1), "", "", "no such file or folder")
            missing.append(str(path))
    return files, missing


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Load every resource from files and folders, collecting all issues.

    The cyclic GC is paused meanwhile (:mod:`chaoskit.config.gcpause` says why).
    """
    issues = Issues()
    paths = list(paths)
    files, unreadable = collect_files(paths, issues)
    resources: list[Resource] = []
    with gc_paused():
        for file in files:
            try:
                docs = read_documents(file)
            except YamlError as e:
                issues.error(e.location, "", "", e.message)
                unreadable.append(file)
                continue
            resources.extend(parse_resources(docs, issues))
    duplicates = _duplicates_in_folders(paths, resources)
    issues.extend(duplicates)
    return LoadResult(tuple(resources), issues, tuple(files), tuple(unreadable), tuple(duplicates))


def _duplicates_in_folders(
    paths: Iterable[str | os.PathLike[str]], resources: Iterable[Resource]
) -> list[Issue]:
    """A warning for each resource (kind, namespace, name) that a second file of the same folder
    defines again, naming both places. The files of a folder are layered in path order, like
    ``kubectl apply -f folder/``, so the later file silently wins: almost always a copy left
    behind. Two definitions in one file are :func:`chaoskit.config.mesh.layer`'s warning."""
    out: list[Issue] = []
    folders = [os.path.join(str(Path(p)), "") for p in paths if _is_dir(p)]
    for folder in folders:
        first: dict[tuple[str, str, str], Resource] = {}
        for r in resources:
            if not r.location.file.startswith(folder):
                continue
            key = (r.KIND, r.namespace, r.name)
            old = first.get(key)
            if old is None:
                first[key] = r
            elif old.location.file != r.location.file:
                message = (
                    f"also defined in {old.location}; the files of a folder are applied in "
                    "path order, so this later one replaces it"
                )
                out.append(Issue(Severity.WARNING, r.location, r.ref, "metadata.name", message))
                first[key] = r
    return out


def _is_dir(path: str | os.PathLike[str]) -> bool:
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def load_text(text: str, file: str = "<string>") -> LoadResult:
    """Load resources from a YAML string (tests, the pytest plugin, the Python API).

    The cyclic GC is paused meanwhile (:mod:`chaoskit.config.gcpause` says why).
    """
    issues = Issues()
    with gc_paused():
        try:
            docs = parse_documents(text, file)
        except YamlError as e:
            issues.error(e.location, "", "", e.message)
            return LoadResult((), issues, (file,), (file,))
        return LoadResult(tuple(parse_resources(docs, issues)), issues, (file,))


def parse_resources(docs: Iterable[Document], issues: Issues) -> list[Resource]:
    out: list[Resource] = []
    for doc in docs:
        out.extend(parse_object(doc.value, doc.loc, f"document {doc.index + 1}", issues))
    return out


def parse_object(value: Any, loc: Location, label: str, issues: Issues) -> list[Resource]:
    """One YAML object → zero or more resources (``kind: List`` holds several)."""
    if not isinstance(value, YMap):
        issues.error(
            loc, "", "", f"{label} must be a mapping with apiVersion, kind, metadata and spec"
        )
        return []
    ctx = Context(issues, resource="")
    top = Fields(value, "", ctx)
    api_version = top.str("apiVersion", required=True)
    kind = top.str("kind", required=True)
    if api_version is None or kind is None:
        top.accept("metadata", "spec", "status", "items")
        return []
    if kind == "List" and api_version == "v1":
        out = []
        for path, item, item_loc in top.list("items"):
            out.extend(parse_object(item, item_loc, path, issues))
        top.accept("metadata")
        top.done()
        return out
    group, _, version = api_version.rpartition("/")
    kube = KUBERNETES_KINDS.get((api_version, kind))
    if kube is not None:
        return [_parse_kubernetes(top, kube, kind, loc, ctx)]
    if kind not in KINDS:
        if kind == "PeerAuthentication" and group == "security.istio.io":
            # Known, accepted, not emulated: a note, since the user may count on mTLS.
            ctx.issues.note(
                top.loc("kind"),
                "",
                "kind",
                "PeerAuthentication is accepted but mutual TLS is not emulated: workloads "
                "talk plain HTTP through chaoskit whatever its mode; ignored",
            )
        elif group.endswith("istio.io") and kind in OTHER_ISTIO_KINDS:
            top.warn("kind", f"{kind} is an Istio resource chaoskit does not use; ignored")
        elif group in (ISTIO_GROUP, CHAOSKIT_API.split("/")[0]):
            top.error("kind", f'unknown kind "{kind}" for {api_version}{did_you_mean(kind, KINDS)}')
        else:
            top.warn("kind", f"{api_version} {kind} is not an Istio or chaoskit resource; ignored")
        return []
    family, parse_spec = KINDS[kind]
    if family == ISTIO and not (group == ISTIO_GROUP and version in ISTIO_VERSIONS):
        top.error(
            "apiVersion",
            f'apiVersion "{api_version}" is not supported for {kind}; '
            f"use {ISTIO_GROUP}/v1 (or v1beta1, v1alpha3)",
        )
        return []
    if family == CHAOSKIT and api_version != CHAOSKIT_API:
        top.error(
            "apiVersion",
            f'apiVersion "{api_version}" is not supported for {kind}; use {CHAOSKIT_API}',
        )
        return []

    meta_f = top.obj("metadata", required=True)
    metadata = parse_metadata(meta_f, fallback_name=f"<unnamed {kind} at line {loc.line}>")
    ctx.resource = f"{kind}/{metadata.namespace}/{metadata.name}"
    ctx.namespace = metadata.namespace
    spec = top.obj("spec", required=True)
    top.accept("status")
    top.done()
    if spec is None:
        return []
    return [parse_spec(spec, api_version, metadata, value.loc)]


def _parse_kubernetes(
    top: Fields, parse: KubeParser, kind: str, loc: Location, ctx: Context
) -> Resource:
    """A Kubernetes object: its metadata checked as ours, the rest read only where needed."""
    meta_f = top.obj("metadata", required=True)
    metadata = parse_metadata(meta_f, fallback_name=f"<unnamed {kind} at line {loc.line}>")
    ctx.resource = f"{kind}/{metadata.namespace}/{metadata.name}"
    ctx.namespace = metadata.namespace
    spec = top.obj("spec")
    top.accept(*top.data)
    return parse(spec, top.str("apiVersion") or "", metadata, loc)
