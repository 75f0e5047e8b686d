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
    #: Stopped by Ctrl-C.
    INTERRUPTED = 130
