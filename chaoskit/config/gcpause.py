"""Pause the cyclic garbage collector while a configuration is loaded.

Why: loading builds hundreds of thousands of container objects (YAML mappings and lists, their
position tables, the frozen resources) and almost all of them live as long as the mesh does.
Each time the allocation counters cross a threshold, CPython's collector walks the young
generation, and every so often the whole heap, looking for cycles among objects that are in
fact all still reachable: for a 1,000-service mesh that was about 40 % of the load time
(bench/, ``load_validate_s`` against ``load_validate_gc_off_s``). Loading creates no garbage
cycles worth collecting early, so the passes are pure overhead; once the collector is back on,
it sees the finished objects a few times and ages them into the old generation as usual.

The pause is scoped and polite: it only disables a collector that is enabled (so a caller that
turned it off, or an enclosing pause, stays in charge) and always turns it back on, whether the
load returns issues or raises. The switch is process-wide, so other threads go without
collections for the same fraction of a second; a load that overlaps another one on a second
thread is merely collected as usual once the first pause ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the ``with`` body with the cyclic GC disabled, if it was enabled; then re-enable it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
