"""``chaoskit fault add|list|remove|reset``: named faults on a running ``chaoskit proxy``, the
way ``toxiproxy-cli toxic add`` works, over the admin API's ``/faults`` endpoints
(:mod:`chaoskit.proxy.admin_api`).

``add`` is idempotent (``PUT /faults/NAME``): run it again with other values and the fault is
replaced. Common faults come from flags; anything else (a ``match``, an UpstreamFault's
``reset`` or ``firstN``) from a YAML or JSON body file with ``--from``, whose messages then name
that file and its lines. Standard library only, like ``chaoskit apply``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chaoskit.cli.apply import add_admin_option, admin_url, request, unreachable
from chaoskit.cli.exit_codes import ExitCode

EXITS = (
    "Exit 0 on success, 1 when the proxy refused (invalid fault, unknown host, not found, "
    "conflict), 2 on wrong arguments or an unreadable file, 3 when the proxy cannot be reached."
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fault",
        help="add, list, remove or reset named faults of a running chaoskit proxy",
        description="Named faults on a running chaoskit proxy (Toxiproxy-style). " + EXITS,
    )
    verbs = p.add_subparsers(dest="fault_verb", metavar="VERB", required=True)

    add = verbs.add_parser(
        "add",
        help="add a fault, or replace the one of that name",
        description="Add a fault, or replace the one of that name. A route fault (the default) "
        "is an Istio VirtualService fault on HOST (before retries); --upstream makes an "
        "UpstreamFault (per attempt, below retries). " + EXITS,
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("host", nargs="?", metavar="HOST", help="the host to break (e.g. ratings)")
    add.add_argument("--upstream", action="store_true", help="an UpstreamFault, not a route fault")
    add.add_argument("--delay", metavar="DURATION", help="a fixed delay, e.g. 2s or 250ms")
    add.add_argument("--abort", metavar="STATUS", help="an HTTP status (503) or a gRPC status name")
    add.add_argument(
        "--percentage", type=float, metavar="N", help="how often it fires, 0-100 (default 100)"
    )
    add.add_argument(
        "--from",
        dest="body_file",
        metavar="FILE",
        help="the whole fault as a YAML/JSON body (docs/proxy.md); no HOST or flags then",
    )
    add_admin_option(add)
    add.set_defaults(handler=run_add)

    ls = verbs.add_parser("list", help="list the faults and where each is active")
    ls.add_argument("--json", action="store_true", help="print the API's JSON answer")
    add_admin_option(ls)
    ls.set_defaults(handler=run_list)

    rm = verbs.add_parser("remove", help="remove faults by name")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.add_argument(
        "--ignore-not-found", action="store_true", help="a name with no fault is not an error"
    )
    add_admin_option(rm)
    rm.set_defaults(handler=run_remove)

    reset = verbs.add_parser("reset", help="remove every fault")
    add_admin_option(reset)
    reset.set_defaults(handler=run_reset)


def _body(args: argparse.Namespace) -> tuple[bytes, str | None] | str:
    """The request body and the file it came from, or why the arguments are wrong."""
    flags = [f"--{n}" for n in ("delay", "abort", "percentage") if getattr(args, n) is not None]
    if args.body_file is not None:
        if args.host is not None or flags or args.upstream:
            return "--from takes the whole fault from the file: no HOST, --upstream or " + (
                ", ".join(flags) or "other flags"
            )
        try:
            return Path(args.body_file).read_bytes(), args.body_file
        except OSError as e:
            return f"{args.body_file}:1: error: cannot read: {e.strerror or e}"
    if args.host is None:
        return "give the HOST to break (or the whole fault with --from FILE)"
    if args.delay is None and args.abort is None:
        return "give --delay and/or --abort (or the whole fault with --from FILE)"
    fault: dict[str, Any] = {"name": args.name, "host": args.host}
    percentage = None
    if args.percentage is not None:
        value = args.percentage
        percentage = {"value": int(value) if float(value).is_integer() else value}
    abort: dict[str, Any] | None = None
    if args.abort is not None:
        key = "httpStatus" if args.abort.isdigit() else "grpcStatus"
        abort = {key: int(args.abort) if args.abort.isdigit() else args.abort}
    delay = None if args.delay is None else {"fixedDelay": args.delay}
    if args.upstream:
        fault["type"] = "upstream"
        if percentage is not None:
            fault["percentage"] = percentage
    else:
        for part in (delay, abort):
            if part is not None and percentage is not None:
                part["percentage"] = percentage
    if delay is not None:
        fault["delay"] = delay
    if abort is not None:
        fault["abort"] = abort
    return json.dumps(fault).encode(), None


def _call(
    args: argparse.Namespace, method: str, path: str, body: bytes | None = None
) -> tuple[int, str] | ExitCode:
    """``(status, text)``, or an exit code when the admin could not be asked."""
    command = f"fault {args.fault_verb}"
    try:
        base = admin_url(args.admin)
    except ValueError as e:
        print(f"chaoskit {command}: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        return request(method, base + path, body)
    except OSError as e:
        print(unreachable(command, args.admin, e), file=sys.stderr)
        return ExitCode.INTERNAL_ERROR


def _refusal(text: str) -> str:
    """The message of an error answer (``{"error": ...}``), or the text as it is."""
    try:
        message = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return text
    return str(message) if str(message).endswith("\n") else f"{message}\n"


def run_add(args: argparse.Namespace) -> ExitCode:
    body = _body(args)
    if isinstance(body, str):
        print(f"chaoskit fault add: {body}" if ":1: error:" not in body else body, file=sys.stderr)
        return ExitCode.BAD_INPUT
    data, file = body
    path = f"/faults/{args.name}"
    answer = _call(args, "PUT", path, data)
    if isinstance(answer, ExitCode):
        return answer
    status, text = answer
    if status in (200, 201):
        print(f"fault/{args.name} {'created' if status == 201 else 'configured'}")
        return ExitCode.OK
    message = _refusal(text)
    if file is not None:
        message = message.replace(f"<admin:PUT {path}>", file)
    print(message, end="", file=sys.stderr)
    return ExitCode.FAILED


def _summary(fault: dict[str, Any]) -> str:
    rest = {k: v for k, v in fault.items() if k not in ("name", "namespace", "type", "host")}
    rest.pop("resources", None)
    return json.dumps(rest, separators=(",", ":"))


def run_list(args: argparse.Namespace) -> ExitCode:
    answer = _call(args, "GET", "/faults")
    if isinstance(answer, ExitCode):
        return answer
    status, text = answer
    if status != 200:
        print(_refusal(text), end="", file=sys.stderr)
        return ExitCode.FAILED
    if args.json:
        print(text, end="")
        return ExitCode.OK
    faults = json.loads(text)["faults"]
    if not faults:
        print("no faults")
        return ExitCode.OK
    rows = [("NAME", "TYPE", "HOST", "ACTIVE IN", "FAULT")]
    for f in faults:
        active = ",".join(
            f"{r['kind'].lower()}/{r['name']} ({r['action']})" for r in f["resources"]
        )
        rows.append((f["name"], f["type"], f["host"], active or "-", _summary(f)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]))
    return ExitCode.OK


def run_remove(args: argparse.Namespace) -> ExitCode:
    code = ExitCode.OK
    for name in args.names:
        answer = _call(args, "DELETE", f"/faults/{name}")
        if isinstance(answer, ExitCode):
            return answer
        status, text = answer
        if status == 204:
            print(f"fault/{name} removed")
        elif status == 404 and args.ignore_not_found:
            continue
        else:
            print(_refusal(text), end="", file=sys.stderr)
            code = ExitCode.FAILED
    return code


def run_reset(args: argparse.Namespace) -> ExitCode:
    answer = _call(args, "POST", "/faults/reset", b"")
    if isinstance(answer, ExitCode):
        return answer
    status, text = answer
    if status != 204:
        print(_refusal(text), end="", file=sys.stderr)
        return ExitCode.FAILED
    print("faults cleared")
    return ExitCode.OK
