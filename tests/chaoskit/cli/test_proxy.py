"""The CLI proxy's access-log writer: lines are batched, never lost, never raise."""

from __future__ import annotations

import asyncio
import io
import time

from chaoskit.cli import proxy as cli_proxy
from chaoskit.records import Record


def record(n: int) -> Record:
    return Record(
        seq=n, request_id=f"id-{n}", start=time.time(), duration=0.001, listener="mesh",
        source="", method="GET", scheme="http", authority="web", path="/", status=200,
        flags=(), details="via_upstream", route_name="default", host="web", cluster="c",
        upstream_host="127.0.0.1:1", attempts=(), faults=(), notes=(),
        bytes_received=0, bytes_sent=2, user_agent="",
    )  # fmt: skip


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_lines_are_flushed_in_batches_on_the_loop() -> None:
    stream = CountingStream()
    writer = cli_proxy._LogWriter(stream, "text")

    async def flushed(times: int) -> None:
        deadline = asyncio.get_running_loop().time() + 5  # bounded: the timer is 0.1 s
        while stream.flushes < times and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def main() -> None:
        for n in range(100):
            writer(record(n))
        assert stream.flushes == 0  # written, not yet flushed
        await flushed(1)
        assert stream.flushes == 1  # one flush for the hundred lines
        writer(record(100))
        await flushed(2)

    asyncio.run(main())
    assert stream.flushes == 2
    assert len(stream.getvalue().splitlines()) == 101


def test_off_the_loop_every_line_is_flushed_at_once() -> None:
    stream = CountingStream()
    writer = cli_proxy._LogWriter(stream, "json")
    writer(record(1))
    assert stream.flushes == 1 and stream.getvalue().startswith("{")


def test_a_closed_stream_never_raises() -> None:
    stream = CountingStream()
    writer = cli_proxy._LogWriter(stream, "text")
    stream.close()
    writer(record(1))
    writer.flush()


def test_refreeze_frees_a_frozen_cycle_that_became_garbage() -> None:
    # In a child process: gc.freeze() is process-wide.
    import subprocess
    import sys

    code = """
import gc, weakref
from chaoskit.cli.proxy import _refreeze
class Config: pass
old = Config(); old.me = old            # a reference cycle, like parts of a loaded mesh
alive = weakref.ref(old)
_refreeze()                             # start-up: frozen
assert gc.get_freeze_count() > 0
del old                                 # a reload replaced it
gc.collect()
assert alive() is not None              # frozen: the collector never looks at it
_refreeze()
assert alive() is None                  # thawed, collected
assert gc.get_freeze_count() > 0        # and the rest frozen again
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
