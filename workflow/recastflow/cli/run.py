"""The model-first subcommand: is my model excluded? A spectrum or a scan through every analysis."""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import AddParser, Context, Subparsers, add_command
from recastflow.core.errors import RecastError


def cmd_run(args: argparse.Namespace, ctx: Context | None) -> None:
    """Run a model (SLHA spectrum) or a scan through the analyses and print the verdict per point."""
    from recastflow.core.io import set_path_policy
    from recastflow.run.api import execute, plan_model, plan_scan, print_plan
    from recastflow.run.summary import format_verdicts, yield_check_lines

    # the model may come from anywhere and the bundles are in the checkout: `run` copies what it uses into
    # its run folder, and the workflow's jobs are confined to that folder
    set_path_policy(None)

    if (args.slha is None) == (args.scan is None):
        raise RecastError("give an SLHA spectrum or --scan FILE (one of the two)", field="run")
    if args.adaptive:
        _run_adaptive(args)
        return
    options = {
        "analyses": args.analyses,
        "process": args.process,
        "events": 5000 if args.events is None else args.events,
        "chunks": 1 if args.chunks is None else args.chunks,
        "seed": args.seed,
        "upper_limits": args.upper_limits,
        "run_dir": args.run_dir,
    }
    plan = plan_model(args.slha, **options) if args.slha is not None else plan_scan(args.scan, **options)
    print_plan(plan)
    if args.plan_only:
        print(f"planned only; run it with: recastflow run ... --run-dir {plan.folder} (or snakemake on it)")
        return
    if args.dry_run:
        _dry_run(plan.folder, args)
        return
    result = execute(plan, cores=args.cores, profile=args.profile, verbose=args.verbose)
    print()
    print(format_verdicts(result.verdicts), end="")
    # how far the front end is from the experiment's own signal yields, where the run had published patches
    for line in yield_check_lines(sorted((plan.folder / "results" / "check" / "yields").glob("*.txt"))):
        print(line)
    print(f"report: {result.report}")
    print(
        f"tables: {plan.folder / 'results' / 'summary'} (verdicts.csv, verdicts.json), limits per analysis in "
        f"{plan.folder / 'results' / 'limits'}"
    )
    if result.failure:
        raise RecastError(f"the verdicts above were made, but {result.failure}", path=str(plan.folder))


def _dry_run(folder: Path, args: argparse.Namespace) -> None:
    """Snakemake's dry run of a planned run folder, its output shown as it is."""
    from recastflow.run.engine import run_workflow

    if run_workflow(folder, cores=args.cores, profile=args.profile, verbose=True, extra=["--dry-run"]):
        raise RecastError("the dry run failed (Snakemake's message is above)", path=str(folder))


def _run_adaptive(args: argparse.Namespace) -> None:
    """``run --scan FILE --adaptive``: plan the adaptive scan, run it, print its summary."""
    from recastflow.run.adaptive import PLOT, execute_adaptive, format_adaptive, plan_adaptive

    if args.scan is None:
        raise RecastError(
            "--adaptive refines a scan: give --scan FILE (with an 'adaptive' section)", field="--adaptive"
        )
    for option, value in (("--events", args.events), ("--chunks", args.chunks), ("--upper-limits", args.upper_limits)):
        if value not in (None, False):
            raise RecastError(
                f"{option} does not apply to an adaptive scan: its events are the scan file's adaptive.events",
                field=option,
            )
    plan = plan_adaptive(args.scan, analyses=args.analyses, process=args.process, seed=args.seed, run_dir=args.run_dir)
    print(
        f"adaptive scan {plan.scan} through {plan.analysis} ({plan.workspace}): {plan.coarse_points} coarse points; "
        f"run folder {plan.folder}"
    )
    if args.plan_only:
        print(f"planned only; run it with: recastflow run --scan {args.scan} --adaptive --run-dir {plan.folder}")
        return
    if args.dry_run:
        # a dry run sees the coarse grid's first chunks only: later chunks and rounds are decided as the scan runs
        _dry_run(plan.folder, args)
        return
    doc = execute_adaptive(plan, cores=args.cores, profile=args.profile, verbose=args.verbose)
    print()
    print(format_adaptive(doc), end="")
    print(f"plot: {plan.folder / PLOT}; table: {plan.folder / 'results' / 'adaptive' / 'scan.csv'}")


def _run_parser(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "run",
        cmd_run,
        "is my model excluded? run an SLHA spectrum or a scan through every analysis with an event selection",
    )
    p.add_argument("slha", nargs="?", help="the model's SLHA spectrum (MODSEL, MASS, DECAY, XSECTION blocks)")
    p.add_argument("--scan", metavar="FILE", help="a scan file instead of one spectrum (axes, constraints, template)")
    p.add_argument(
        "--analyses", nargs="+", metavar="ID[:WORKSPACE]", help="analyses to run (default: all with a selection)"
    )
    p.add_argument("--process", help="process card, a name in config/processes or a path (default: from the SLHA)")
    p.add_argument("--events", type=int, help="events per point (default: 5000)")
    p.add_argument("--chunks", type=int, help="generation jobs per point (default: 1)")
    p.add_argument("--seed", type=int, default=1, help="base seed of every random step (default: %(default)s)")
    p.add_argument("--upper-limits", action="store_true", help="also compute cross-section upper limits and r")
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="with --scan: refine the scan where the contour is and stop each point's events once its verdict is "
        "decided (the scan file's 'adaptive' section; one --analyses ID:WORKSPACE)",
    )
    p.add_argument("--run-dir", metavar="DIR", help="the run folder (default: runs/<SLHA stem or scan name>)")
    p.add_argument("--cores", default="all", help="local cores, or jobs at once with a cluster profile (default: all)")
    p.add_argument("--profile", help="Snakemake cluster profile (e.g. slurm, or a folder with config.yaml)")
    p.add_argument("--verbose", action="store_true", help="Snakemake's full output instead of one line per job")
    p.add_argument("--dry-run", action="store_true", help="plan the jobs without running them")
    p.add_argument("--plan-only", action="store_true", help="write the run folder and stop")
    p.set_defaults(needs_config=False)


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {"run": _run_parser}
