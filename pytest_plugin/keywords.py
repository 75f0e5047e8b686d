"""``chaos.fault(percentage=50, firstN=2)``: the YAML spelling of a keyword works too.

Users copy fields from their UpstreamFault and VirtualService YAML into a test; Python's own
``TypeError: got an unexpected keyword argument 'percentage'`` says neither what the keyword
is called here nor which ones exist. The YAML names are accepted (translated to the Python
ones), and any other unknown keyword gets a did-you-mean over both spellings.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import ParamSpec, TypeVar

from chaoskit.config.fields import did_you_mean
from chaoskit.faults.actions import ACTIONS

P = ParamSpec("P")
R = TypeVar("R")

#: YAML field → ``chaos.fault`` keyword, for every UpstreamFault field spelled differently.
FAULT_ALIASES: Mapping[str, str] = {
    **{action.name: action.attr for action in ACTIONS if action.name != action.attr},
    "percentage": "percent",
    "firstN": "first",
    "endpointLabels": "endpoint_labels",
}
#: YAML field → ``chaos.route_fault`` keyword.
ROUTE_FAULT_ALIASES: Mapping[str, str] = {"percentage": "percent"}


def yaml_keywords(aliases: Mapping[str, str]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept ``aliases`` (YAML name → keyword) as keywords of the decorated method."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        known = [n for n in inspect.signature(fn).parameters if n != "self"]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            __tracebackhide__ = True
            for key in [k for k in kwargs if k not in known]:
                target = aliases.get(key)
                if target is None:
                    hint = did_you_mean(key, [*known, *aliases])
                    raise TypeError(
                        f"chaos.{fn.__name__}() has no keyword {key!r}{hint}; "
                        f"its keywords: {', '.join(known)}"
                    )
                if target in kwargs:
                    raise TypeError(
                        f"chaos.{fn.__name__}() got {key!r} and {target!r}: the same keyword twice"
                    )
                kwargs[target] = kwargs.pop(key)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
