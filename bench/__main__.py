"""``python -m bench [--fast | --full | --smoke] [--only S,...] [--out DIR]``.

Runs the benchmark scenarios of issue 7 (see docs/performance.md) on 127.0.0.1, starting and
always stopping every process itself, and writes ``run-<mode>-<time>.json`` and ``.md`` into
``--out`` (default ``bench/results/``; a full run there also refreshes ``full.json`` and
``full.md``, the copies the docs quote). The exit code is 0 when every scenario ran — targets
missed or met never change it (CI runs ``--fast`` as a smoke check, not a gate) — and 1 when a
scenario could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench import report
from bench.load import Load
from bench.procs import Processes, loadavg, placement
from bench.runner import PLANS, REPO, Bench
from bench.scenarios import SCENARIOS

DEFAULT_OUT = REPO / "bench" / "results"
ORDER = ("throughput", "latency", "faults", "scale", "pytest", "memory", "bodies", "profile")


def _bytecode_cache() -> str:
    """Whether child processes can use cached bytecode: ``on``, or why not."""
    compiled = any((Path(__file__).resolve().parents[1] / "chaoskit").glob("__pycache__/*.pyc"))
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "read-only (PYTHONDONTWRITEBYTECODE set; " + (
            "caches exist)" if compiled else "no cache yet: every process compiles chaoskit)"
        )
    return "on"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def source_fingerprint() -> str | None:
    """A hash of chaoskit's and the plugin's Python sources (other people edit them while a
    long run goes on: a changed hash means the run measured two versions)."""
    try:
        import chaoskit  # noqa: PLC0415

        roots = [Path(chaoskit.__file__).parent, REPO / "pytest_plugin"]
    except ImportError:
        return None
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            with contextlib.suppress(OSError):
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--fast",
        dest="mode",
        action="store_const",
        const="fast",
        help="every scenario, short runs (under 2 minutes; the default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every scenario at the issue's sizes, repeated (about 20 minutes)",
    )
    mode.add_argument(
        "--smoke",
        dest="mode",
        action="store_const",
        const="smoke",
        help="tiny runs that only prove the harness works (tests/bench)",
    )
    p.add_argument(
        "--only", default="", help=f"comma-separated scenarios to run, from: {', '.join(ORDER)}"
    )
    p.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the results")
    p.add_argument(
        "--no-wrk",
        action="store_true",
        help="use the Python load generator even where wrk is installed",
    )
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile the proxies with py-spy (default: on in --full)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    p.add_argument(
        "--render",
        type=Path,
        metavar="RUN.json",
        help="measure nothing: recompute the targets and rewrite the Markdown of a "
        "saved run (RUN.json and RUN.md)",
    )
    p.set_defaults(mode="fast")  # fmt: skip
    return p.parse_args(argv)


def _selected(args: argparse.Namespace) -> list[str]:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = [s for s in [*only, *skip] if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; choose from {ORDER}")
    chosen = only or [s for s in ORDER if s != "profile"]
    profile = args.profile if args.profile is not None else args.mode == "full"
    if profile and "profile" not in chosen:
        chosen.append("profile")
    if args.profile is False:
        chosen = [s for s in chosen if s != "profile"]
    return [s for s in ORDER if s in chosen and s not in skip]


def side_run_args(
    prog: str, description: str | None, fast: str, out: Path, argv: list[str]
) -> argparse.Namespace:
    """The arguments of a benchmark run on its own (``python -m bench.streaming``,
    ``bench.grpc``): ``--fast`` (what it does: ``fast``), ``--smoke``, ``--out``, ``--keep``;
    ``mode`` is ``"full"`` without a mode flag."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    mode = p.add_mutually_exclusive_group()
    for flag, help_text in (
        ("--fast", fast),
        ("--smoke", "tiny sizes: only proves the harness works (tests/bench)"),
    ):
        mode.add_argument(flag, dest="mode", action="store_const", const=flag[2:], help=help_text)
    p.add_argument("--out", type=Path, default=out, help="where to write the results")
    p.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    p.set_defaults(mode="full")
    return p.parse_args(argv)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: processes get stopped


def render(path: Path) -> int:
    """Targets and Markdown again from a saved run (after a change to the report)."""
    run = json.loads(path.read_text())
    run["targets"] = report.targets(run["results"])
    path.write_text(json.dumps(run, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(report.markdown(run) + "\n")
    print(f"rewrote {path} and {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render is not None:
        return render(args.render)
    scenarios = _selected(args)
    plan = PLANS[args.mode]
    place = placement()
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="chaoskit-bench-"))
    os.environ["CHAOSKIT_BENCH_RUN"] = str(run_dir)  # every child inherits it: findable
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    load = Load(place, run_dir, use_wrk=not args.no_wrk)
    run: dict[str, Any] = {
        "meta": {
            "mode": args.mode,
            "command": command.strip(),
            "started": started.isoformat(timespec="seconds"),
            "scenarios": scenarios,
            "run_dir": str(run_dir),
            "machine": {
                "cpu": _cpu_model(),
                "cpus": os.cpu_count(),
                "kernel": f"{platform.system()} {platform.release()}",
            },
            "versions": {
                "python": platform.python_version(),
                "mitmproxy": _version("mitmproxy"),
                "aiohttp": _version("aiohttp"),
                "chaoskit": _version("chaoskit"),
                "pytest": _version("pytest"),
                "wrk": load.wrk_version(),
            },
            "chaoskit_source": {"start": source_fingerprint()},
            # Start-up figures (pytest session, proxy ready) include compiling every module
            # when the environment forbids bytecode caches and none exist yet.
            "bytecode_cache": _bytecode_cache(),
            "load_tool": load.tool,
            "placement": place.description,
            "loadavg_before": loadavg(),
            "plan": plan.__dict__,
        },
        "results": {},
        "errors": {},
    }
    print(f"chaoskit bench ({args.mode}): {', '.join(scenarios)}; load: {load.tool}; "
          f"{place.description}", flush=True)  # fmt: skip
    try:
        with Processes(run_dir, place) as procs:
            bench = Bench(plan, run_dir, procs, place, load)
            for name in scenarios:
                s0 = time.monotonic()
                print(f"  {name} ...", end="", flush=True)
                try:
                    bench.results[name] = SCENARIOS[name](bench)
                except Exception as e:  # report it, stop its processes, go on with the next
                    run["errors"][name] = f"{type(e).__name__}: {e}"
                    print(f" failed: {type(e).__name__}: {str(e)[:2000]}", flush=True)
                    traceback.print_exc(file=sys.stderr)
                else:
                    print(f" {time.monotonic() - s0:.0f} s", flush=True)
                run["results"] = bench.results
            run["notes"] = bench.notes
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    run["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
    src = run["meta"]["chaoskit_source"]
    src["end"] = source_fingerprint()
    src["changed_during_run"] = src["start"] != src["end"]
    if src["changed_during_run"]:
        run.setdefault("notes", []).append(
            "chaoskit's sources changed during this run: processes started at different times "
            "ran different code, so compare its figures with care (or run it again)."
        )
    run["meta"]["loadavg_after"] = loadavg()
    run["targets"] = report.targets(run["results"])
    md = report.markdown(run)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    base = args.out / f"run-{args.mode}-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(run, indent=1, default=str) + "\n")
    base.with_suffix(".md").write_text(md + "\n")
    if args.mode == "full" and args.out.resolve() == DEFAULT_OUT.resolve() and not args.only:
        (args.out / "full.json").write_text(json.dumps(run, indent=1, default=str) + "\n")
        (args.out / "full.md").write_text(md + "\n")
    print()
    for t in run["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"  [{verdict:>6}] {t['what']}: {t['figure']} (target {t['target']})")
    print(f"\nwrote {base}.json and .md ({run['meta']['duration_s']:.0f} s)")
    if args.keep:
        print(f"kept {run_dir}")
    return 1 if run["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
