"""``chaoskit apply FILE...`` and ``chaoskit delete FILE...``: change a running ``chaoskit
proxy`` over its admin API (:mod:`chaoskit.proxy.admin_api`), like ``kubectl apply/delete``.

Each file is sent as one request, so a file is applied whole or not at all; the proxy's
messages name the pseudo file ``<admin:POST /config/apply>``, printed here as the real file.
Standard library only (no mitmproxy): the command runs anywhere Python runs.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chaoskit.cli.exit_codes import ExitCode
from chaoskit.cli.proxy import parse_address
from chaoskit.config.issues import Issues
from chaoskit.config.loader import collect_files

DEFAULT_ADMIN = "127.0.0.1:15000"  # chaoskit proxy's default --admin
TIMEOUT_SECONDS = 30.0


def register(sub: Any) -> None:
    for verb, helps in (
        ("apply", "apply resources to a running chaoskit proxy (layered over its files)"),
        ("delete", "delete resources applied with chaoskit apply from a running chaoskit proxy"),
    ):
        p = sub.add_parser(verb, help=helps, description=helps + ". " + EXITS)
        p.add_argument("paths", nargs="+", metavar="FILE", help="YAML file or folder")
        add_admin_option(p)
        p.set_defaults(handler=run, verb=verb)


def add_admin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--admin",
        default=DEFAULT_ADMIN,
        metavar="HOST:PORT",
        help="the proxy's admin address (default %(default)s)",
    )


def admin_url(admin: str) -> str:
    """``http://HOST:PORT`` for the ``--admin`` value; ``ValueError`` when it is not one."""
    host, port = parse_address(admin, "--admin")
    authority = f"[{host}]" if ":" in host else host
    return f"http://{authority}:{port}"


def unreachable(command: str, admin: str, e: OSError) -> str:
    reason = getattr(e, "reason", e)
    return (
        f"chaoskit {command}: cannot reach the proxy's admin at {admin} ({reason}); "
        "is `chaoskit proxy` running?"
    )


EXITS = (
    "Exit 0 when every file was accepted, 1 when the proxy refused one (invalid, not found), "
    "2 when a file cannot be read or the arguments are wrong, 3 when the proxy cannot be reached."
)


def run(args: argparse.Namespace) -> ExitCode:
    try:
        base = admin_url(args.admin)
    except ValueError as e:
        print(f"chaoskit {args.verb}: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    issues = Issues()
    files, missing = collect_files(args.paths, issues)
    if missing:
        for issue in issues.sorted():
            print(issue, file=sys.stderr)
        return ExitCode.BAD_INPUT
    endpoint = f"/config/{args.verb}"
    code = ExitCode.OK
    for file in files:
        try:
            body = Path(file).read_bytes()
        except OSError as e:
            print(f"{file}:1: error: cannot read: {e.strerror or e}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        try:
            status, text = request("POST", base + endpoint, body)
        except OSError as e:
            print(unreachable(args.verb, args.admin, e), file=sys.stderr)
            return ExitCode.INTERNAL_ERROR
        text = text.replace(f"<admin:POST {endpoint}>", file)
        if status == 200:
            print(text, end="")
        else:
            print(text, end="", file=sys.stderr)
            code = ExitCode.FAILED
    return code


def request(method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
    """Send ``body`` (YAML or JSON); the status and text of any answer (an error status is an
    answer too). ``OSError`` when the admin cannot be reached."""
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("content-type", "application/yaml")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(req, timeout=TIMEOUT_SECONDS) as r:
            return int(r.status), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode("utf-8", "replace")
