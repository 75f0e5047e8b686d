"""``chaoskit explore EXPERIMENT.yaml``: find the smallest fault plan that breaks the hypothesis.

Exit codes: 0 nothing broke it within the budget, 1 a breaking plan was found (and written),
2 bad input, 3 the run failed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from chaoskit import safefiles
from chaoskit.cli.exit_codes import ExitCode
from chaoskit.config.durations import parse_duration
from chaoskit.rng import new_seed, parse_seed


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explore",
        help="search fault plans (with Hypothesis) for the smallest one that breaks the hypothesis",
        description="Try generated UpstreamFault plans on the experiment's hosts while its "
        "traffic flows; shrink a breaking plan to the smallest and write it as an experiment.",
    )
    p.add_argument("experiment", metavar="EXPERIMENT.yaml")
    p.add_argument(
        "--max-examples",
        type=int,
        default=20,
        metavar="N",
        help="new plans to try while searching (default %(default)s)",
    )
    p.add_argument(
        "--max-shrinks",
        type=int,
        default=50,
        metavar="N",
        help="plans to try while shrinking a breaking one (default %(default)s)",
    )
    p.add_argument(
        "--time-budget",
        default="120s",
        metavar="DURATION",
        help="stop searching after this (default %(default)s)",
    )
    p.add_argument(
        "--requests",
        type=int,
        default=10,
        metavar="N",
        help="requests per tried plan (default %(default)s)",
    )
    p.add_argument(
        "--hosts", help="comma-separated hosts to fault (default: every service in the mesh)"
    )
    p.add_argument("--kinds", default="abort,delay,reset", help="fault kinds (default %(default)s)")
    p.add_argument("--seed", help="seed for the search and the proxy")
    p.add_argument(
        "--out", help="where to write the found experiment (default: NAME.explored.yaml)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> ExitCode:
    from chaoskit.experiment.explore import explore, write_experiment  # noqa: PLC0415
    from chaoskit.experiment.runner import BadInput, load_plan  # noqa: PLC0415

    try:
        seed = parse_seed(args.seed) if args.seed is not None else new_seed()
        budget = parse_duration(args.time_budget)
        if args.max_examples < 1 or args.requests < 1:
            raise ValueError("--max-examples and --requests must be at least 1")
        if args.max_shrinks < 0:
            raise ValueError("--max-shrinks must be at least 0")
        plan = load_plan(args.experiment)
    except ValueError as e:
        print(f"chaoskit explore: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except BadInput as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        if args.out:
            safefiles.check_destination(args.out)  # before the search, not after it
    except OSError as e:
        print(f"chaoskit explore: --out {safefiles.describe(e)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    hosts = [h.strip() for h in args.hosts.split(",")] if args.hosts else None
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    name = plan.experiment.name
    print(
        f"exploring {name} (seed {seed}, up to {args.max_examples} plans and "
        f"{args.max_shrinks} shrink steps, {budget:g}s)"
    )
    try:
        result = explore(
            plan, seed=seed, max_examples=args.max_examples, max_shrinks=args.max_shrinks,
            time_budget=budget, requests=args.requests, hosts=hosts, kinds=kinds, say=print,
        )  # fmt: skip
    except ValueError as e:
        print(f"chaoskit explore: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except Exception as e:  # an app that does not start, a port in use: a failed run, not a bug
        print(f"chaoskit explore: the run failed: {e}", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    print(tried_line(result, args))
    if result.plan is None:
        print("no plan broke the hypothesis within the budget")
        return ExitCode.OK
    print("smallest breaking plan:")
    import yaml  # noqa: PLC0415

    print("  " + yaml.safe_dump_all(result.plan, sort_keys=False).replace("\n", "\n  ").rstrip())
    for check in result.checks:
        if not check.ok:
            print(f"  ✗ {check.name}: expected {check.expected}, observed {check.observed}")
            if check.detail:
                print(f"    {check.detail}")
    from chaoskit.records import explain_flags  # noqa: PLC0415

    for line in explain_flags(result.flags):  # the flags the details name, explained
        print(f"    {line}")
    path = Path(plan.file)
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}.explored.yaml")
    try:
        write_experiment(plan, result.plan, seed, out, command=explore_command(args, seed))
    except OSError as e:  # replaced atomically, never through a link; a folder or FIFO: refused
        print(f"chaoskit explore: not written: {safefiles.describe(e)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f"written: {out}  (run it: chaoskit run {out})")
    return ExitCode.FAILED


def tried_line(result: Any, args: argparse.Namespace) -> str:
    """How many plans ran on the system, the search and the shrinking counted apart, and what
    cut either short: ``--max-examples`` bounds only the search (see
    :mod:`chaoskit.experiment.trials`)."""
    from chaoskit.experiment.trials import SHRINK_LIMIT, TIME_BUDGET  # noqa: PLC0415

    line = (
        f"tried {result.examples} plans on {', '.join(result.hosts)} in {result.elapsed:.1f}s: "
        f"{result.generated} searching (--max-examples {args.max_examples}), "
        f"{result.shrinks} shrinking (--max-shrinks {args.max_shrinks})"
    )
    if result.stopped == SHRINK_LIMIT:
        line += "; shrinking stopped at --max-shrinks, a smaller plan may exist"
    elif result.stopped == TIME_BUDGET:
        line += f"; stopped by --time-budget {args.time_budget}"
    return line


def explore_command(args: argparse.Namespace, seed: int) -> str:
    """The command line that repeats this search exactly: the path as given, every option
    with the value used (defaults too, so a later change of default does not change it)."""
    words = ["chaoskit", "explore", args.experiment, "--seed", str(seed)]
    words += ["--max-examples", str(args.max_examples), "--max-shrinks", str(args.max_shrinks)]
    words += ["--time-budget", args.time_budget, "--requests", str(args.requests)]
    words += ["--kinds", args.kinds]
    if args.hosts:
        words += ["--hosts", args.hosts]
    if args.out:
        words += ["--out", args.out]
    return shlex.join(words)
