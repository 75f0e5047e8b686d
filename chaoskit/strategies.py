"""Hypothesis strategies that generate fault plans: lists of ``UpstreamFault`` resources.

A plan is a list of resource dicts, ready for ``chaos.apply(*plan)``, ``Proxy.apply(*plan)`` or
``yaml.safe_dump_all(plan)``; every one validates against a mesh that has the hosts. Plans shrink
towards *fewer and milder* faults, so a failing ``@given`` test reports the smallest plan that
still breaks the code under test:

- fewer faults (the list shrinks), on the first host given;
- milder actions: ``kinds`` are tried mildest first (delay, abort, reset, …, hang), delays get
  shorter, the first status of ``statuses`` is preferred;
- fewer hits: ``firstN: 1``, the largest ``nth``, the lowest ``percentage``, sequences that pass
  more often.

>>> from hypothesis import given, settings, HealthCheck
>>> from chaoskit.strategies import fault_plans
>>> @settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
... @given(plan=fault_plans(["payments"], max_faults=2))
... def test_checkout_survives(chaos, plan):            # doctest: +SKIP
...     chaos.reset()          # one test, many examples: start each from the test's own config
...     chaos.apply(*plan)
...     ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from chaoskit.config.resource import CHAOSKIT_API
from chaoskit.faults.actions import ACTIONS, BY_NAME, ExampleBounds

#: Every action a plan may use, mildest first (shrinking moves towards the front): the actions
#: of :data:`chaoskit.faults.actions.ACTIONS` by their ``mildness``.
KINDS = tuple(a.name for a in sorted(ACTIONS, key=lambda a: a.mildness))
#: How a fault picks the attempts it hits; shrinking moves towards the front.
SELECTIONS = ("firstN", "nth", "sequence", "percentage")
DEFAULT_STATUSES = (503, 500, 502, 504)


def _actions(kind: str, bounds: ExampleBounds) -> st.SearchStrategy[dict[str, Any]]:
    """The spec fields of one action, mildest values first (the action's ``examples``)."""
    examples = BY_NAME[kind].examples(bounds)
    values = examples.values
    drawn: st.SearchStrategy[Any] = (
        st.integers(values.start, values.stop - 1)
        if isinstance(values, range)
        else st.sampled_from(list(values))
    )
    return drawn.map(lambda v: {kind: examples.to_yaml(v)})


def _selection(selection: str, kind: str, *, max_count: int) -> st.SearchStrategy[dict[str, Any]]:
    """The selection fields, from fewest hits to most."""
    if selection == "firstN":
        return st.integers(1, max_count).map(lambda n: {"firstN": n})
    if selection == "nth":
        return st.integers(0, max_count - 1).map(lambda k: {"nth": max_count - k})
    if selection == "sequence":
        steps = st.lists(st.sampled_from(["pass", kind]), min_size=1, max_size=max_count)
        return steps.map(lambda s: {"sequence": s if kind in s else [*s, kind]})
    return st.integers(1, 100).map(lambda v: {"percentage": {"value": v}})


def _check(hosts: Sequence[str], kinds: Sequence[str], selections: Sequence[str]) -> None:
    if isinstance(hosts, str) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise InvalidArgument(f"hosts must be a non-empty list of host names, not {hosts!r}")
    for what, given, known in (("kinds", kinds, KINDS), ("selections", selections, SELECTIONS)):
        unknown = [k for k in given if k not in known]
        if isinstance(given, str) or not given or unknown:
            raise InvalidArgument(
                f"{what} must be a non-empty list from {', '.join(known)}; got {given!r}"
            )


def upstream_faults(
    hosts: Sequence[str],
    *,
    kinds: Sequence[str] = ("abort", "delay", "reset"),
    statuses: Sequence[int] = DEFAULT_STATUSES,
    max_delay: float = 2.0,
    selections: Sequence[str] = SELECTIONS,
    max_count: int = 5,
    namespace: str = "default",
    name: str = "fault",
) -> st.SearchStrategy[dict[str, Any]]:
    """One ``UpstreamFault`` resource dict: one action of ``kinds`` on one of ``hosts``.

    ``max_delay`` is in seconds; ``max_count`` bounds ``firstN``, ``nth`` and sequence length.
    """
    _check(hosts, kinds, selections)
    if not statuses or not all(200 <= s <= 599 for s in statuses):
        raise InvalidArgument(f"statuses must be HTTP statuses in 200-599, not {statuses!r}")
    if max_count < 1:
        raise InvalidArgument(f"max_count must be at least 1, not {max_count!r}")
    bounds = ExampleBounds(tuple(statuses), max(1, round(max_delay * 1000)))
    ordered_kinds = sorted(set(kinds), key=KINDS.index)
    ordered_selections = sorted(set(selections), key=SELECTIONS.index)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        host = draw(st.sampled_from(list(hosts)))
        kind = draw(st.sampled_from(ordered_kinds))
        action = draw(_actions(kind, bounds))
        selection = draw(st.sampled_from(ordered_selections))
        chosen = draw(_selection(selection, kind, max_count=max_count))
        return {
            "apiVersion": CHAOSKIT_API,
            "kind": "UpstreamFault",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"host": host, **action, **chosen},
        }

    return build()


def fault_plans(
    hosts: Sequence[str],
    *,
    kinds: Sequence[str] = ("abort", "delay", "reset"),
    max_faults: int = 3,
    min_faults: int = 0,
    statuses: Sequence[int] = DEFAULT_STATUSES,
    max_delay: float = 2.0,
    selections: Sequence[str] = SELECTIONS,
    max_count: int = 5,
    namespace: str = "default",
    name_prefix: str = "plan",
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Lists of ``min_faults``..``max_faults`` UpstreamFault dicts named by what they do,
    ``plan-<host>-<action>`` (``-2``, ``-3``… when one plan has more of the same; see
    :func:`fault_name`).

    See the module docstring for how plans shrink. Arguments are as for
    :func:`upstream_faults`; ``kinds`` may name any of :data:`KINDS`.
    """
    if not 0 <= min_faults <= max_faults:
        raise InvalidArgument(
            f"need 0 <= min_faults <= max_faults, got min_faults={min_faults!r}, "
            f"max_faults={max_faults!r}"
        )
    one = upstream_faults(
        hosts, kinds=kinds, statuses=statuses, max_delay=max_delay, selections=selections,
        max_count=max_count, namespace=namespace,
    )  # fmt: skip

    def named(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken: dict[str, int] = {}
        out = []
        for fault in plan:
            base = fault_name(name_prefix, fault["spec"])
            taken[base] = taken.get(base, 0) + 1
            name = base if taken[base] == 1 else f"{base}-{taken[base]}"
            out.append({**fault, "metadata": {**fault["metadata"], "name": name}})
        return out

    return st.lists(one, min_size=min_faults, max_size=max_faults).map(named)


def fault_name(prefix: str, spec: dict[str, Any]) -> str:
    """``<prefix>-<host>-<action>``: a fault's name says what it does, and never depends on the
    faults beside it in the plan.

    Why it matters: a fault's random draws (``percentage``, delay distributions) come from a
    stream seeded by its name. Named by position (``plan-1``, ``plan-2``), deleting the first
    fault renamed the second and changed its draws, so shrinking could not drop a harmless
    fault (a 1 ms delay) without changing whether the rest broke the system — and kept it.
    Named by what it does, a fault keeps its draws when another is deleted, and lowering its
    ``percentage`` hits a subset of the same attempts (shrinking is monotone).
    """
    kind = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", next(k for k in KINDS if k in spec)).lower()
    host = "".join(c if c.isascii() and c.isalnum() else "-" for c in str(spec["host"]).lower())
    # one DNS-1123 label (at most 63 characters), as every resource name must be
    return f"{prefix}-{host.strip('-')}"[: 62 - len(kind)].rstrip("-") + f"-{kind}"


__all__ = ["KINDS", "SELECTIONS", "fault_name", "fault_plans", "upstream_faults"]
