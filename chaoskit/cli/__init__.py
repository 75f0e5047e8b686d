"""The ``chaoskit`` command: argument wiring only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chaoskit import __version__
from chaoskit.cli import apply, explore, fault, proxy, run, validate
from chaoskit.cli.exit_codes import ExitCode

_SUBCOMMANDS = (validate, proxy, apply, fault, run, explore)


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors, which matches ExitCode.BAD_INPUT."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chaoskit",
        description="Istio traffic management and fault injection for HTTP services, "
        "without Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"chaoskit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as e:  # never a traceback for the user; still say what broke
        print(
            f"chaoskit: internal error: {type(e).__name__}: {e}\n"
            "This is a bug in chaoskit; please report it with the command you ran.",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL_ERROR
