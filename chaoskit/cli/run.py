"""``chaoskit run EXPERIMENT.yaml``: steady state, inject, check during, roll back, check after.

Exit codes: 0 the hypothesis held, 1 it deviated, 2 bad input, 3 the run failed (e.g. an app did
not start), 4 the steady state was not met before any fault was injected (not a deviation),
130 interrupted (the mesh configuration was rolled back first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chaoskit import safefiles
from chaoskit.cli.exit_codes import ExitCode
from chaoskit.rng import parse_seed


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run an Experiment: steady state, faults, checks during and after, rollback",
        description="Run a chaoskit Experiment. Exit 0 when the hypothesis held, 1 when it "
        "deviated, 2 for bad input, 3 when the run itself failed, 4 when the steady state was not "
        "met before any fault was injected, 130 when interrupted.",
    )
    p.add_argument("experiment", metavar="EXPERIMENT.yaml")
    p.add_argument(
        "--seed", help="seed for every random decision (default: the file's, else random)"
    )
    p.add_argument("--journal", metavar="FILE.json", help="write the full journal as JSON")
    p.add_argument("--junit", metavar="FILE.xml", help="write one JUnit test case per check")
    p.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    p.add_argument("--quiet", action="store_true", help="only the verdict")
    p.set_defaults(handler=run)


#: (flag, owner-only?): the journal and JUnit name every request, check and fault of the run;
#: the HTML report is meant to be passed around (mode from the umask).
OUTPUTS = (("journal", True), ("junit", True), ("report", False))


def check_outputs(args: argparse.Namespace) -> list[str]:
    """Problems with the output paths, found before anything runs: a folder, a FIFO or a
    device where a file should go (a link is fine: it is replaced, never written through)."""
    from chaoskit.report import missing_report_deps  # noqa: PLC0415

    problems = []
    if args.report and (missing := missing_report_deps()):
        problems.append(f"--report: {missing}")
    for flag, _private in OUTPUTS:
        target = getattr(args, flag)
        if target:
            try:
                safefiles.check_destination(target)
            except OSError as e:
                problems.append(f"--{flag} {safefiles.describe(e)}")
    return problems


def write_outputs(journal: Any, args: argparse.Namespace, out: Any) -> list[str]:
    """Write every requested output (each replaced atomically, never through a link); return
    what could not be written, one line per output."""
    failed = []
    for flag, private in OUTPUTS:
        target = getattr(args, flag)
        if not target:
            continue
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            safefiles.write_file(target, _render(flag, journal), private=private)
        except OSError as e:
            failed.append(f"--{flag} {safefiles.describe(e)}")
            continue
        out.write(f"{flag + ':':<8} {target}\n")
    return failed


def _render(flag: str, journal: Any) -> str:
    if flag == "journal":
        return str(journal.to_json())
    if flag == "junit":
        from chaoskit.report.junit import render_junit  # noqa: PLC0415

        return render_junit(journal)
    from chaoskit.report.html import render_html  # noqa: PLC0415 - matplotlib loads slowly

    return render_html(journal)


def verdict_line(journal: Any) -> str:
    failed = [c for c in journal.checks if not c.ok]
    if journal.status == "held":
        return f"verdict: HELD — every check passed ({len(journal.checks)} checks)"
    if journal.status == "deviated":
        phases = sorted(
            {c.phase for c in failed},
            key=["steady-state-before", "method", "steady-state-after"].index,
        )
        where = ", ".join(phases)
        return f"verdict: DEVIATED — {len(failed)} of {len(journal.checks)} checks failed ({where})"
    if journal.status == "not-steady":
        return (
            f"verdict: NOT STEADY — steady state not met before injection: {len(failed)} of "
            f"{len(journal.checks)} checks failed (steady-state-before); no fault was injected, "
            "so this is not a deviation"
        )
    if journal.status == "interrupted":
        return "verdict: INTERRUPTED — the mesh configuration was rolled back"
    return f"verdict: ERROR — {journal.error}"


def run(args: argparse.Namespace) -> ExitCode:
    from chaoskit.experiment.runner import BadInput, Runner, load_plan  # noqa: PLC0415

    out = sys.stderr if args.quiet else sys.stdout
    try:
        seed = parse_seed(args.seed) if args.seed is not None else None
        plan = load_plan(args.experiment)
    except ValueError as e:
        print(f"chaoskit run: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except BadInput as e:
        for issue in e.issues:
            print(issue, file=sys.stderr)
        print(f"chaoskit run: {args.experiment} cannot be run (exit 2)", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if problems := check_outputs(args):
        for problem in problems:
            print(f"chaoskit run: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    exp = plan.experiment
    print(f"experiment {exp.name}: {exp.title}", file=out)
    journal = Runner(plan, seed=seed, out=None if args.quiet else out).run()
    if journal.lessons:
        print("lessons:", file=out)
        for lesson in journal.lessons:
            print(f"  {lesson}", file=out)
    unwritten = write_outputs(journal, args, out)
    print(verdict_line(journal))
    print(f"replay: chaoskit run {args.experiment} --seed {journal.seed}", file=out)
    if unwritten:
        for problem in unwritten:
            print(f"chaoskit run: not written: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    known = (ExitCode.OK, ExitCode.FAILED, ExitCode.NOT_STEADY, ExitCode.INTERRUPTED)
    return ExitCode(journal.exit_code) if journal.exit_code in known else ExitCode.INTERNAL_ERROR
