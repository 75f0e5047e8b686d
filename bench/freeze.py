"""An experiment, not part of chaoskit: ``chaoskit proxy`` with ``gc.freeze()`` after start-up.

``python -m bench.freeze proxy -f ...`` is ``chaoskit proxy -f ...`` except that, once the
configuration is loaded and the proxy listens, every object alive (mitmproxy, chaoskit, the
validated mesh) is moved out of the cyclic garbage collector's reach with ``gc.freeze()``, and
the young-generation threshold is raised (``gc.set_threshold(10_000, 10, 10)``). The benchmark
runs it next to the stock CLI to measure what that one change would be worth (see
docs/performance.md, "What dominates the cost"). It wraps ``chaoskit.proxy.api.Proxy.start``
from the outside; nothing in chaoskit is changed.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from chaoskit.cli import main
from chaoskit.proxy import api

_start = api.Proxy.start


def _start_then_freeze(self: Any, *args: Any, **kwargs: Any) -> Any:
    result = _start(self, *args, **kwargs)
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    return result


if __name__ == "__main__":
    api.Proxy.start = _start_then_freeze  # type: ignore[method-assign]
    sys.argv = ["chaoskit", *sys.argv[1:]]
    raise SystemExit(main())
