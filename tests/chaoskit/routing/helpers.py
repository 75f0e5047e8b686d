"""Builders shared by the routing tests: meshes from YAML, requests from URLs."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from chaoskit.config import load_paths, load_text, validate
from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.mesh import Mesh
from chaoskit.config.virtual_service import VirtualService
from chaoskit.routing.decision import Decision
from chaoskit.routing.request import ANONYMOUS, RequestInfo, Workload, split_authority
from chaoskit.routing.router import Listener, Router
from tests.chaoskit.config.helpers import SERVICES, doc

__all__ = ["SERVICES", "doc"]  # re-exported: the routing tests build meshes the same way

BOOKINFO = Path(__file__).resolve().parents[3] / "experiments" / "bookinfo"
REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"


def vs(name: str, spec: str, *, namespace: str = "default") -> str:
    return doc("VirtualService", name, spec, namespace=namespace)


def build(
    *texts: str,
    services: bool = True,
    bookinfo: bool = False,
    variants: tuple[str, ...] = (),
    strict: bool = True,
) -> Mesh:
    """A validated mesh: optional base services or Bookinfo (plus variants), then ``texts``."""
    results = []
    if bookinfo:
        results.append(load_paths([BOOKINFO / "mesh"]))
        results += [load_paths([BOOKINFO / "variants" / v]) for v in variants]
    elif services:
        results.append(load_text(SERVICES, "services.yaml"))
    results += [load_text(t, f"doc{i}.yaml") for i, t in enumerate(texts)]
    v = validate(results)
    if strict:
        assert v.ok, [str(i) for i in v.issues.errors]
    return v.mesh


def req(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    source: Workload = ANONYMOUS,
) -> RequestInfo:
    """``http://reviews:9080/path?x=1`` as a :class:`RequestInfo`."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    _, port = split_authority(parts.netloc, default)
    return RequestInfo(
        method=method,
        scheme=parts.scheme,
        authority=parts.netloc,
        path=parts.path or "/",
        query=parts.query,
        headers=dict(headers or {}),
        port=port,
        source=source,
    )


def route(
    mesh: Mesh | Router,
    url: str,
    listener: Listener | str = "mesh",
    *,
    seed: int = 0,
    **kw: object,
) -> Decision:
    router = mesh if isinstance(mesh, Router) else Router(mesh)
    return router.route(req(url, **kw), listener, random.Random(seed))  # type: ignore[arg-type]


def first_vs(mesh: Mesh, name: str | None = None) -> VirtualService:
    return next(v for v in mesh.virtual_services if name is None or v.name == name)


def item(text: str) -> str:
    """A YAML block as one list item: ``- `` before the first line, two spaces before the rest."""
    first, *rest = textwrap.dedent(text).strip("\n").splitlines()
    return "\n".join([f"- {first}", *(f"  {line}" for line in rest)]) + "\n"


def rule(spec: str) -> HTTPRoute:
    """The only ``http`` rule of a VirtualService for ``reviews``."""
    mesh = build(vs("r", "hosts: [reviews]\nhttp:\n" + item(spec)), strict=False)
    return first_vs(mesh).http[0]


def entry(match_yaml: str) -> HTTPMatchRequest:
    """One parsed ``match`` entry, e.g. ``"uri: {prefix: /a}"``."""
    text = "match:\n" + textwrap.indent(item(match_yaml), "  ")
    return rule(text + "route: [{destination: {host: reviews}}]\n").match[0]
