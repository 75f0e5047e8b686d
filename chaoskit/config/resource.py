"""What every resource shares: kind, metadata and where it was written."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from chaoskit.config.fields import Fields
from chaoskit.config.hosts import is_dns1123_label
from chaoskit.config.yamlsource import Location

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
CHAOSKIT_API = "chaoskit.dev/v1alpha1"

# Kubernetes ObjectMeta fields a file exported with kubectl may carry; accepted and ignored.
_K8S_META = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "generateName",
    "selfLink",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Metadata:
    """``metadata`` of a resource; ``namespace`` defaults to ``default`` as in Istio."""

    name: str
    namespace: str = "default"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """Base of every kind: ``kind`` is a class constant, the rest is per object."""

    KIND: ClassVar[str] = ""

    api_version: str
    metadata: Metadata
    location: Location

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def ref(self) -> str:
        """``Kind/namespace/name``: how messages name this resource."""
        return f"{self.KIND}/{self.metadata.namespace}/{self.metadata.name}"


def parse_metadata(meta: Fields | None, fallback_name: str) -> Metadata:
    """Read ``metadata``; a missing name is reported and replaced so parsing can go on."""
    if meta is None:
        return Metadata(name=fallback_name)
    name = meta.str("name", required=True)
    if name is not None and not _valid_name(name):
        meta.error(
            "name", f"{name!r} is not a valid name (lower-case DNS-1123: a-z, 0-9, '-', '.')"
        )
    namespace = meta.str("namespace")
    if namespace is not None and not is_dns1123_label(namespace):
        meta.error("namespace", f"{namespace!r} is not a valid namespace (DNS-1123 label)")
        namespace = None
    labels = meta.str_map("labels")
    annotations = meta.str_map("annotations", scalars_as_text=True)
    meta.accept("labels", "annotations", *_K8S_META)
    meta.done()
    return Metadata(
        name=name or fallback_name,
        namespace=namespace or "default",
        labels=labels,
        annotations=annotations,
    )


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 253 and all(is_dns1123_label(part) for part in name.split("."))
