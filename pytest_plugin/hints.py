"""``chaos.fault("paymnts", ...)``: name the registry host that was probably meant.

The validator says a fault's host "is not in the registry"; in a test, where the host is typed
by hand, the next question is always "then what is?". ``chaos.fault`` and ``chaos.route_fault``
add the answer to the issue about their host: a did-you-mean over the hosts the mesh knows, or
the list of them when none is close.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from chaoskit.config.fields import did_you_mean
from chaoskit.config.hosts import expand
from chaoskit.config.issues import Issue
from chaoskit.config.mesh import Mesh

#: How many registry hosts a hint lists when none is close to the one asked for.
LISTED_HOSTS = 8

#: Rewrites one validation issue (the identity for issues it is not about).
IssueHint = Callable[[Issue], Issue]


def registry_hosts(mesh: Mesh) -> list[str]:
    """The hosts of the mesh's registry as their ServiceEntries write them (no wildcards)."""
    names = {h for se in mesh.service_entries for h in se.hosts if not h.startswith("*")}
    return sorted(names)


def unknown_host_hint(mesh: Mesh, host: str, namespace: str = "default") -> str:
    """``'; did you mean "payments"?'``, or the registry's hosts, when ``host`` is not in the
    registry; ``""`` when it is."""
    if mesh.find_service(expand(host, namespace)) is not None:
        return ""
    known = registry_hosts(mesh)
    if not known:
        return "; the registry is empty: add a ServiceEntry for it"
    if close := did_you_mean(host, known):
        return close
    shown = ", ".join(known[:LISTED_HOSTS]) + (", …" if len(known) > LISTED_HOSTS else "")
    return f"; hosts in the registry: {shown}"


def host_issue_hint(resource: str, hint: str) -> IssueHint:
    """Append ``hint`` to the issues of ``resource`` (``Kind/namespace/name``) about a host
    field (``spec.host``, ``….destination.host``)."""

    def rewrite(issue: Issue) -> Issue:
        about_host = issue.path == "spec.host" or issue.path.endswith(".destination.host")
        if not hint or issue.resource != resource or not about_host:
            return issue
        return dataclasses.replace(issue, message=issue.message + hint)

    return rewrite
