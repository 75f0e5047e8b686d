"""The resources ``chaos.fault`` and ``chaos.route_fault`` build, from keyword arguments.

``build_upstream_fault`` writes an ``UpstreamFault`` as the dict a user would write in YAML;
``build_route_fault`` writes an Istio ``HTTPFaultInjection``. To add a fault to an existing
VirtualService, its rules are copied with the fault spliced in (``with_fault``, shared with the
admin API's ``/faults``), the fault and match having been parsed by the real VirtualService
parser (``parse_rule_parts``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaoskit.config.fault_splice import with_fault as with_fault  # noqa: PLC0414 - re-export
from chaoskit.config.http_route import HTTPFaultInjection
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.resource import CHAOSKIT_API
from chaoskit.config.virtual_service import VirtualService
from chaoskit.errors import ConfigError
from chaoskit.faults.actions import ACTIONS
from chaoskit.faults.actions import abort as abort_action
from chaoskit.faults.actions import delay as delay_action
from chaoskit.sources import to_results

ISTIO_API = "networking.istio.io/v1"


def match_list(match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[Any]:
    if match is None:
        return []
    if isinstance(match, Mapping):
        return [dict(match)]
    return [dict(m) for m in match]


def label_for(host: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", host.lower().split(".")[0]).strip("-")
    return label[:40] or "host"


def build_upstream_fault(
    host: str,
    *,
    name: str,
    namespace: str = "default",
    percent: float = 100,
    first: int | None = None,
    nth: int | None = None,
    sequence: Sequence[str] | None = None,
    repeat: bool = False,
    window: Mapping[str, Any] | None = None,
    subset: str | None = None,
    endpoint: str | None = None,
    endpoint_labels: Mapping[str, str] | None = None,
    match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    **actions: Any,
) -> dict[str, Any]:
    """The ``UpstreamFault`` resource (as a dict) that ``chaos.fault(...)`` applies.

    ``actions`` are keyed by each action's ``attr`` (``delay=``, ``slow_body=`` …, see
    :data:`chaoskit.faults.actions.ACTIONS`); ``None`` (and ``hang=False``) leaves one out.
    ``percentage`` is written only when ``percent`` is not 100, because it cannot be combined
    with ``firstN``/``nth``/``sequence`` (the validator says so if both are asked for).
    """
    unknown = set(actions) - {a.attr for a in ACTIONS}
    if unknown:
        known = ", ".join(a.attr for a in ACTIONS)
        raise TypeError(f"unknown fault action {sorted(unknown)[0]!r} (actions: {known})")
    spec: dict[str, Any] = {"host": host}
    if subset is not None:
        spec["subset"] = subset
    if endpoint_labels:
        spec["endpointLabels"] = dict(endpoint_labels)
    if endpoint is not None:
        spec["endpoint"] = endpoint
    if matches := match_list(match):
        spec["match"] = matches
    for action in ACTIONS:
        value = actions.get(action.attr)
        if value is not None and (written := action.from_keyword(value)) is not None:
            spec[action.name] = written
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise TypeError(f"percent must be a number from 0 to 100, not {percent!r}")
    if percent != 100:
        spec["percentage"] = {"value": percent}
    if first is not None:
        spec["firstN"] = first
    if nth is not None:
        spec["nth"] = nth
    if sequence is not None:
        spec["sequence"] = list(sequence)
    if repeat:
        spec["repeat"] = True
    if window is not None:
        spec["window"] = dict(window)
    return {
        "apiVersion": CHAOSKIT_API,
        "kind": "UpstreamFault",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def build_route_fault(
    delay: str | float | None = None,
    abort: int | str | Mapping[str, Any] | None = None,
    percent: float = 100,
) -> dict[str, Any]:
    """An Istio ``HTTPFaultInjection`` (a VirtualService rule's ``fault``) as a dict."""
    if delay is None and abort is None:
        raise TypeError("route_fault needs delay= and/or abort=")
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise TypeError(f"percent must be a number from 0 to 100, not {percent!r}")
    fault: dict[str, Any] = {}
    if delay is not None:
        fixed = delay_action.duration_text(delay, "delay")
        fault["delay"] = {"fixedDelay": fixed, "percentage": {"value": percent}}
    if abort is not None:
        fault["abort"] = {"percentage": {"value": percent}, **abort_action.from_keyword(abort)}
    return fault


def parse_rule_parts(
    host: str, fault: dict[str, Any], matches: Iterable[Any]
) -> tuple[HTTPFaultInjection, tuple[HTTPMatchRequest, ...]]:
    """Parse a fault (and matches) with the real VirtualService parser, to splice into a copy."""
    rule: dict[str, Any] = {"fault": fault, "route": [{"destination": {"host": host}}]}
    if matches := list(matches):
        rule["match"] = matches
    template = {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": {"name": "route-fault"},
        "spec": {"hosts": [host], "http": [rule]},
    }
    (loaded,) = to_results([template], "<chaos.route_fault>")
    if loaded.issues.errors:
        raise ConfigError(loaded.issues.sorted())
    (vs,) = loaded.resources
    assert isinstance(vs, VirtualService) and vs.http[0].fault is not None
    return vs.http[0].fault, vs.http[0].match
