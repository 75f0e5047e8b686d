"""``chaoskit proxy -f PATH``: the mesh proxy for local development and for experiments.

Prints one ready line, then one access-log line per request. Watches its files: a valid change
is swapped in atomically, an invalid one is reported and the last good configuration stays.
SIGINT/SIGTERM stop it cleanly, freeing every port.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, TextIO

from chaoskit import accesslog, safefiles
from chaoskit.cli.exit_codes import ExitCode
from chaoskit.config.durations import parse_duration
from chaoskit.config.loader import YAML_SUFFIXES
from chaoskit.errors import ConfigError, GatewayPortError, ProxyError
from chaoskit.netaddr import is_loopback
from chaoskit.proxy import budget, limits
from chaoskit.records import Record
from chaoskit.rng import parse_seed

#: How often the configuration files are checked for changes.
RELOAD_POLL_SECONDS = 0.5
#: Access-log lines reach the file (or stdout) at most this long after the request ends.
LOG_FLUSH_SECONDS = 0.1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "proxy",
        help="run the mesh proxy (HTTP_PROXY) with Istio routing, policies and faults",
        description="Run chaoskit's proxy. Point clients at it with HTTP_PROXY/HTTPS_PROXY "
        "(name the caller: http://productpage@127.0.0.1:15001). Every Gateway HTTP server "
        "also gets a reverse-proxy listener on 127.0.0.1:<port>.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="YAML files or folders, as for validate and run (later ones layer over earlier ones)",
    )
    p.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="the same, as an option (repeatable; after the positional paths)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:15001",
        metavar="HOST:PORT",
        help="forward-proxy address (default %(default)s)",
    )
    p.add_argument(
        "--admin",
        default="127.0.0.1:15000",
        metavar="HOST:PORT",
        help="admin address, loopback only (default %(default)s)",
    )
    p.add_argument(
        "--gateway-port",
        dest="gateway_ports",
        action="append",
        type=_gateway_port_arg,
        default=[],
        metavar="PORT=LOCAL",
        help="bind the Gateway port PORT of the YAML on LOCAL instead (0: any free port, "
        "printed when ready); repeatable. Istio's YAML keeps its 80/443/8080 unchanged",
    )
    p.add_argument(
        "--workload",
        dest="workload_ports",
        action="append",
        type=_workload_port_arg,
        default=[],
        metavar="NAME=PORT",
        help="give the workload NAME (a WorkloadEntry or Deployment) its own forward-proxy "
        "listener on PORT (0: any free port): requests through it come from NAME, with no "
        "name in the proxy URL, as each pod's sidecar knows its pod; repeatable",
    )
    p.add_argument(
        "--tcp",
        dest="tcp_ports",
        action="append",
        type=_tcp_port_arg,
        default=[],
        metavar="[WORKLOAD@]HOST:PORT=LOCAL",
        help="open a TCP listener on LOCAL (0: any free port, printed when ready) for the TCP "
        "port PORT of service HOST (e.g. redis:6379=16379): point a database or cache client "
        "at it and its connections follow the VirtualService tcp routes, DestinationRule and "
        "TCP UpstreamFaults; WORKLOAD@ makes them come from that workload; repeatable",
    )
    p.add_argument(
        "--gateway-port-offset",
        type=int,
        default=0,
        metavar="N",
        help="bind every other Gateway port at its YAML port + N (e.g. 10000: 80 → 10080)",
    )
    p.add_argument("--seed", help="seed for every random decision (default: random, printed)")
    p.add_argument(
        "--access-log",
        default="-",
        metavar="FILE|-",
        help="where to write access-log lines (default: standard output)",
    )
    p.add_argument("--access-log-format", choices=("text", "json"), default="text")
    p.add_argument("--state-dir", help="where the CA is kept (default ~/.chaoskit)")
    p.add_argument(
        "--web",
        nargs="?",
        const=8081,
        type=int,
        metavar="PORT",
        help="also serve mitmweb's flow UI on 127.0.0.1:PORT (default 8081); flows "
        "are marked and commented with route, endpoint and faults",
    )
    p.add_argument(
        "--max-connections",
        type=_max_connections_arg,
        metavar="N",
        help="client connections open at once, on all listeners; past it new connections are "
        "closed at once (default: derived from the open-files limit, which is first raised to "
        "the hard limit)",
    )
    p.add_argument(
        "--request-headers-timeout",
        type=_duration_arg,
        default=limits.DEFAULT_REQUEST_HEADERS_TIMEOUT,
        metavar="DURATION",
        help="a client that has not sent a whole request head this long after connecting (or "
        "after the head's first byte, on a kept-alive connection) gets 408 and is closed; "
        "0 turns it off (default 10s)",
    )
    p.add_argument(
        "--max-buffered-bytes",
        type=_size_arg,
        default=budget.DEFAULT_BODY_BUDGET,
        metavar="SIZE",
        help="request and response bodies held at once by all requests together (e.g. 256m, "
        "1g); past it a request is answered 503 with flag OM; 0 turns it off (default 256m)",
    )
    p.set_defaults(handler=run)  # fmt: skip


def _gateway_port_arg(text: str) -> tuple[int, int]:
    config, sep, local = text.partition("=")
    if (
        sep
        and config.isdigit()
        and local.isdigit()
        and 0 < int(config) <= 65535
        and int(local) <= 65535
    ):
        return int(config), int(local)
    raise argparse.ArgumentTypeError(f"{text!r} is not PORT=LOCAL (e.g. 80=18080, or 80=0)")


def _workload_port_arg(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if sep and name and port.isdigit() and int(port) <= 65535:
        return name, int(port)
    raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PORT (e.g. productpage=15002)")


def _tcp_port_arg(text: str) -> tuple[str, int]:
    target, sep, local = text.rpartition("=")
    if sep and ":" in target and local.isdigit() and int(local) <= 65535:
        return target, int(local)
    raise argparse.ArgumentTypeError(
        f"{text!r} is not [WORKLOAD@]HOST:PORT=LOCAL (e.g. redis:6379=16379, or redis:6379=0)"
    )


GATEWAY_PORT_HINT = (
    "move it with --gateway-port {port}=LOCAL (0: any free port) or --gateway-port-offset N"
)


def _size_arg(text: str) -> int:
    try:
        return budget.check_total(budget.parse_size(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _max_connections_arg(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of connections (1 or more)")
    return int(text)


def _duration_arg(text: str) -> float:
    try:
        return limits.check_request_headers_timeout(parse_duration(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{what} {text!r} is not HOST:PORT (e.g. 127.0.0.1:15001)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


def _with_yaml(paths: list[str]) -> list[str]:
    """``paths`` without the folders that hold no YAML file: an empty mesh is valid (Istio with
    no resources passes everything through, ALLOW_ANY), so a folder emptied while the proxy
    runs, or empty from the start, is served as such. A missing path stays, to be reported."""
    return [p for p in paths if not os.path.isdir(p) or _fingerprint([p]) != ()]


def _fingerprint(paths: list[str]) -> tuple[tuple[str, int, int], ...] | OSError:
    """Every configuration file (as the loader finds them: YAML, hidden names skipped) with
    its mtime and size; a missing path is ``(path, -1, -1)``. Or why a folder could not be
    scanned — out of descriptors, say —, which the watcher takes as "try again", never as
    "the files are gone": ``Path.rglob`` (the loader's walk) returns nothing at all when
    ``scandir`` fails with EMFILE, so it cannot tell."""
    out: list[tuple[str, int, int]] = []

    def fail(error: OSError) -> None:
        raise error

    try:
        for path in paths:
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                out.append((path, -1, -1))
                continue
            if not os.path.isdir(path):
                out.append((path, st.st_mtime_ns, st.st_size))
                continue
            for folder, dirs, names in os.walk(path, onerror=fail):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.startswith(".") or not name.endswith(YAML_SUFFIXES):
                        continue
                    file = os.path.join(folder, name)
                    try:
                        st = os.stat(file)
                    except FileNotFoundError:
                        continue  # gone since the scan: a change like any other
                    out.append((file, st.st_mtime_ns, st.st_size))
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in a path
        return e if isinstance(e, OSError) else OSError(str(e))
    return tuple(out)


class _LogWriter:
    """Writes access-log lines; the proxy loop calls it, so keep it short and never raise.

    Lines are flushed at most :data:`LOG_FLUSH_SECONDS` after they are written, not one
    system call per request (that cost about 1 % of the proxy's CPU under load); closing the
    stream at shutdown flushes the rest."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.format = accesslog.format_json if fmt == "json" else accesslog.format_text
        self.lock = threading.Lock()
        self._flush_scheduled = False

    def __call__(self, record: Record) -> None:
        try:
            line = self.format(record)
            with self.lock:
                self.stream.write(line + "\n")
        except (OSError, ValueError):
            return
        if not self._flush_scheduled:
            try:
                asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self.flush)
                self._flush_scheduled = True
            except RuntimeError:  # not on a loop: write through
                self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        try:
            with self.lock:
                self.stream.flush()
        except (OSError, ValueError):
            pass


def log_to_stderr() -> None:
    """Errors inside the proxy must reach the user: the core's (with their traceback), and
    mitmproxy's and asyncio's, which mitmproxy's own root handler would otherwise swallow
    (a destroyed pending task, an unclosed session, an addon error)."""
    for name, level, prefix in (
        ("chaoskit", logging.WARNING, "chaoskit"),
        ("mitmproxy", logging.ERROR, "mitmproxy"),
        ("asyncio", logging.WARNING, "asyncio"),
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(f"{prefix}: %(levelname)s: %(message)s"))
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if name == "chaoskit":
            logger.setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> ExitCode:
    from chaoskit.proxy.api import (  # noqa: PLC0415 - mitmproxy loads only when needed
        ExposedListenerWarning,
        Proxy,
    )
    from chaoskit.proxy.runtime import skip_debug_typechecks  # noqa: PLC0415

    try:
        listen_host, listen_port = parse_address(args.listen, "--listen")
        admin_host, admin_port = parse_address(args.admin, "--admin")
        seed = parse_seed(args.seed) if args.seed is not None else None
    except ValueError as e:
        print(f"chaoskit proxy: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not is_loopback(admin_host):
        print(f"chaoskit proxy: the admin listener must stay on loopback, not {admin_host}",
              file=sys.stderr)  # fmt: skip
        return ExitCode.BAD_INPUT
    if not is_loopback(listen_host):
        print(f"WARNING: listening on {listen_host}: anyone who can reach this address can use "
              "the proxy and its CA-signed interception", file=sys.stderr)  # fmt: skip
    files = [*args.paths, *args.files]
    if not files:
        print("chaoskit proxy: give the mesh configuration: YAML files or folders "
              "(chaoskit proxy mesh/ or -f mesh/)", file=sys.stderr)  # fmt: skip
        return ExitCode.BAD_INPUT
    # The process is ours: use every descriptor the hard limit allows (macOS starts at 256).
    limits.raise_open_files_limit()
    # Taken before the files are read: an edit made while the proxy starts (or just after its
    # ready line, before the watcher's first look) is a change the watcher then sees.
    seen = _fingerprint(files)
    try:
        proxy = Proxy(
            *_with_yaml(files), seed=seed, host=listen_host, port=listen_port,
            admin_port=admin_port, admin_host=admin_host, web_port=args.web,
            gateway_ports=dict(args.gateway_ports),
            gateway_port_offset=args.gateway_port_offset, state_dir=args.state_dir,
            workload_ports=dict(args.workload_ports),
            max_connections=args.max_connections,
            request_headers_timeout=args.request_headers_timeout,
            body_budget=args.max_buffered_bytes, tcp_ports=dict(args.tcp_ports),
        )  # fmt: skip
    except ConfigError as e:
        print(f"chaoskit proxy: configuration rejected\n{e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except ProxyError as e:  # e.g. --web on a mitmproxy whose UI has no authentication
        print(f"chaoskit proxy: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    log_stream: TextIO = sys.stdout
    if args.access_log != "-":
        # Owner-only (it names every request's path and caller), never through a link.
        try:
            log_stream = safefiles.open_log(args.access_log)
        except OSError as e:
            print(f"chaoskit proxy: --access-log {safefiles.describe(e)}", file=sys.stderr)
            return ExitCode.BAD_INPUT
    elif isinstance(sys.stdout, io.TextIOWrapper):
        # a character the terminal's encoding lacks is escaped, never the line dropped
        sys.stdout.reconfigure(errors="backslashreplace")
    writer = _LogWriter(log_stream, args.access_log_format)
    proxy.core.on_record.append(writer)

    log_to_stderr()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with warnings.catch_warnings():  # the WARNING above already said it, louder
            warnings.simplefilter("ignore", ExposedListenerWarning)
            proxy.start()
        # Everything alive now (mitmproxy, chaoskit, the validated mesh) lives as long as the
        # process: keep the cyclic GC from rescanning it, and collect the young generation less
        # often. Measured in bench/ (docs/performance.md): +14% throughput, p99 123 → 53 ms.
        _refreeze()
        gc.set_threshold(10_000, 10, 10)
        skip_debug_typechecks()
    except ProxyError as e:
        print(f"chaoskit proxy: {e}{_hint(e)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        gateways = _gateways_text(proxy.core.gateway_ports)
        web = f" web={proxy.web_url}" if proxy.web_url else ""
        named = sorted((name, port) for port, name in proxy.core.workload_ports.items())
        if named:
            web = " workloads=" + ",".join(f"{n}={p}" for n, p in named) + web
        tcp = sorted(f"{t}={h}:{p}" for t, (h, p) in proxy.tcp_listeners.bound.items())
        if tcp:
            web = " tcp=" + ",".join(tcp) + web
        print(
            f"chaoskit proxy ready: listen={proxy.url} admin={proxy.admin_url} gateways={gateways} "
            f"seed={proxy.seed} ca={proxy.ca_path}{web}",
            flush=True,
        )
        _watch(proxy, files, stop, seen)
    finally:
        proxy.stop()
        writer.flush()
        if log_stream is not sys.stdout:
            log_stream.close()
    print("chaoskit proxy stopped", file=sys.stderr)
    return ExitCode.OK


def _refreeze() -> None:
    """Collect, then move every object alive into the GC's permanent generation.

    Called at start-up and after each reload: frozen objects are never scanned again, but a
    frozen reference cycle is never freed either, so the old configuration a reload replaced
    must be thawed, collected and the new one frozen (a few ms per reload)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _watch(
    proxy: Any, files: list[str], stop: threading.Event,
    last: tuple[tuple[str, int, int], ...] | OSError,
) -> None:  # fmt: skip
    """Poll the files; swap in valid changes, report invalid ones and keep the last good config.

    A scan that fails (no descriptor left, a folder briefly unreadable) keeps the last
    fingerprint and is tried again on the next tick; the first failure of a run is reported.
    ``last`` is the files' fingerprint from before they were loaded."""
    scan_failed = isinstance(last, OSError)
    while not stop.wait(RELOAD_POLL_SECONDS):
        current = _fingerprint(files)
        if isinstance(current, OSError):
            if not scan_failed:
                print(f"chaoskit proxy: cannot scan the configuration files ({current}); "
                      "trying again", file=sys.stderr, flush=True)  # fmt: skip
            scan_failed = True
            continue
        scan_failed = False
        if current == last:
            continue
        last = current
        try:
            # Reload = the files as they are now, as the new base (not layered over the old one).
            proxy.rebase(*_with_yaml(files))
        except (ConfigError, ProxyError) as e:
            print(f"chaoskit proxy: change rejected, keeping the last good configuration\n{e}"
                  f"{_hint(e)}", file=sys.stderr, flush=True)  # fmt: skip
        except Exception as e:  # a reload must never take the proxy down
            print(f"chaoskit proxy: reload failed ({type(e).__name__}: {e}); keeping the last "
                  "good configuration", file=sys.stderr, flush=True)  # fmt: skip
        else:
            n = len(proxy.validation.resources)
            print(f"chaoskit proxy: reloaded {n} resources", file=sys.stderr, flush=True)
        _refreeze()  # the replaced (or rejected) configuration is garbage now


def _hint(e: BaseException) -> str:
    """How to get past a Gateway port that cannot be bound."""
    if isinstance(e, GatewayPortError):
        return "; " + GATEWAY_PORT_HINT.format(port=e.config_port)
    return ""


def _gateways_text(bound_to_config: dict[int, int]) -> str:
    """``8080`` for a Gateway bound where its YAML says; ``80=18080`` for one moved."""
    parts = sorted((config, bound) for bound, config in bound_to_config.items())
    return ",".join(str(c) if c == b else f"{c}={b}" for c, b in parts) or "-"
