"""``chaoskit explore EXPERIMENT.yaml``: find the smallest fault plan that breaks the hypothesis.

Exit codes: 0 nothing broke it within the budget, 1 a breaking plan was found (and written),
2 bad input, 3 the run failed.
"""

from __future__ import annotations

import argparse
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
        "--max-examples", type=int, default=20, help="plans to try (default %(default)s)"
    )
    p.add_argument(
        "--time-budget", default="120s", help="stop searching after this (default %(default)s)"
    )
    p.add_argument(
        "--requests", type=int, default=10, help="requests per tried plan (default %(default)s)"
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
    print(f"exploring {name} (seed {seed}, up to {args.max_examples} plans, {budget:g}s)")
    try:
        result = explore(
            plan, seed=seed, max_examples=args.max_examples, time_budget=budget,
            requests=args.requests, hosts=hosts, kinds=kinds, say=print,
        )  # fmt: skip
    except ValueError as e:
        print(f"chaoskit explore: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except Exception as e:  # an app that does not start, a port in use: a failed run, not a bug
        print(f"chaoskit explore: the run failed: {e}", file=sys.stderr)
        return ExitCode.INTERNAL_ERROR
    print(f"tried {result.examples} plans on {', '.join(result.hosts)} in {result.elapsed:.1f}s")
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
    path = Path(plan.file)
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}.explored.yaml")
    try:
        write_experiment(plan, result.plan, seed, out)
    except OSError as e:  # replaced atomically, never through a link; a folder or FIFO: refused
        print(f"chaoskit explore: not written: {safefiles.describe(e)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f"written: {out}  (run it: chaoskit run {out})")
    return ExitCode.FAILED
