"""Exit codes of every ``chaoskit`` command (also listed in docs/cli.md)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    #: Everything held: configuration valid, hypothesis held.
    OK = 0
    #: Configuration has errors (``validate``), or the experiment deviated (``run``).
    FAILED = 1
    #: Input could not be read at all: a missing file, not YAML, bad command-line usage.
    BAD_INPUT = 2
    #: The run itself failed (an app did not start), or chaoskit hit a bug; the message says which.
    INTERNAL_ERROR = 3
    #: ``run``: the steady state was not met before any fault was injected, so the method was
    #: skipped; not a deviation (the system or the hypothesis needs fixing first).
    NOT_STEADY = 4
    #: Stopped by Ctrl-C.
    INTERRUPTED = 130
