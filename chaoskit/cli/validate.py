"""``chaoskit validate PATH...``: every problem at once, one per line, then a summary."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chaoskit.cli.exit_codes import ExitCode
from chaoskit.config import validate_paths


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check Istio and chaoskit YAML: errors and warnings, with file, line and field",
        description="Validate mesh configuration. Prints FILE:LINE: severity: "
        "Kind/namespace/name: field.path: message [CODE] for every problem (severity error, "
        "warning or note; CODE is istioctl analyze's IST0xxx when Istio reports it too), then a "
        "summary. "
        "Exit 0 when there is no error, 1 when there are errors, 2 when input cannot be read.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="YAML file or folder (searched recursively)"
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument(
        "--strict", action="store_true", help="treat warnings as errors (notes never fail)"
    )
    p.set_defaults(handler=run)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def run(args: argparse.Namespace) -> ExitCode:
    v = validate_paths(args.paths)
    issues = v.issues.sorted()
    n_err, n_warn = len(v.issues.errors), len(v.issues.warnings)
    n_note = len(v.issues.notes)
    if v.unreadable:
        code = ExitCode.BAD_INPUT
    elif n_err or (args.strict and n_warn):
        code = ExitCode.FAILED
    else:
        code = ExitCode.OK
    if args.format == "json":
        json.dump(
            {
                "ok": code is ExitCode.OK,
                "files": list(v.files),
                "unreadable": list(v.unreadable),
                "resources": len(v.resources),
                "errors": n_err,
                "warnings": n_warn,
                "notes": n_note,
                "issues": [i.to_dict() for i in issues],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return code
    for issue in issues:
        print(issue)
    summary = (
        f"{_plural(n_err, 'error')}, {_plural(n_warn, 'warning')}"
        f"{', ' + _plural(n_note, 'note') if n_note else ''} in "
        f"{_plural(len(v.files), 'file')} ({_plural(len(v.resources), 'resource')})"
    )
    if v.unreadable:
        summary += f"; {_plural(len(v.unreadable), 'file')} could not be read"
    print(summary)
    return code
