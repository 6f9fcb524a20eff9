"""The ``adaptive`` subcommand: the jobs of an adaptive scan (``workflow/rules/adaptive.smk``).

``recastflow adaptive --scan FILE --analysis ID --workspace W --process CARD [...] <step>``: the options before
the step name the scan (the run configuration's ``adaptive`` section); each step is one job of
:mod:`recastflow.adaptive.jobs`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recastflow.cli._common import AddParser, Context, Subparsers, add_command, log, paths
from recastflow.core.errors import RecastError


def _run(args: argparse.Namespace, ctx: Context):  # -> AdaptiveRun
    from recastflow.adaptive.jobs import load_run

    if not 0.5 < args.cl < 1:
        raise RecastError(f"got {args.cl!r}; give a number between 0.5 and 1, e.g. 0.95", field="--cl")
    return load_run(
        Path(args.scan),
        analysis=args.analysis,
        workspace=args.workspace,
        process=Path(args.process),
        detector=Path(args.detector),
        seed=args.seed,
        cl=args.cl,
        analyses_dir=ctx.analyses_dir,
    )


def cmd_adaptive(args: argparse.Namespace, ctx: Context) -> None:
    """Run one job of an adaptive scan."""
    from recastflow.adaptive import jobs

    run = _run(args, ctx)
    step = args.step
    if step == "spectrum":
        jobs.write_spectrum(run, args.point, Path(args.output))
        log(f"{args.point}: spectrum -> {args.output}")
    elif step == "generate":
        header = jobs.generate(run, args.point, args.chunk, Path(args.slha), Path(args.output))
        log(f"{args.point} chunk {args.chunk}: {header['n_events']} events -> {args.output}")
    elif step == "emulate":
        header = jobs.emulate(run, args.point, args.chunk, Path(args.input), Path(args.output))
        log(f"{args.point} chunk {args.chunk}: {header['n_events']} events emulated -> {args.output}")
    elif step == "decide":
        from recastflow.stats.points import LimitSettings

        given = (("maxiter", args.fit_maxiter), ("tolerance", args.fit_tolerance), ("timeout_s", args.fit_timeout))
        settings = LimitSettings(
            cl=run.cl,
            method=args.method,
            fallback=args.fallback,
            verify=args.verify,
            fit_options={k: v for k, v in given if v is not None},
        )
        jobs.decide_point(run, args.point, paths(args.reco), Path(args.output), settings=settings, log=log)
    elif step == "round":
        jobs.next_round(run, args.round, paths(args.earlier), paths(args.decisions), Path(args.output), log=log)
    else:
        jobs.summarise(
            run,
            paths(args.rounds),
            paths(args.decisions),
            json_out=Path(args.json),
            csv_out=Path(args.csv),
            plot_out=Path(args.plot),
            log=log,
        )


def _adaptive_parser(sub: Subparsers) -> None:
    p = add_command(sub, "adaptive", cmd_adaptive, "one job of an adaptive scan (the workflow's adaptive rules)")
    p.add_argument("--scan", required=True, help="the scan file, with an 'adaptive' section")
    p.add_argument("--analysis", required=True, help="the bundle the points are run through")
    p.add_argument("--workspace", required=True, help="the bundle's workspace the signal goes into")
    p.add_argument("--process", required=True, help="the process card")
    p.add_argument(
        "--detector", default="config/detectors/ATLAS-Run2.yaml", help="the detector card (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=1, help="the base seed (default: %(default)s)")
    p.add_argument("--cl", type=float, default=0.95, help="confidence level of the exclusion (default: %(default)s)")
    steps = p.add_subparsers(dest="step", required=True, help="the job to run")
    s = steps.add_parser("spectrum", help="write a point's SLHA file")
    s.add_argument("--point", required=True, help="the point's name (<scan>_<v1>_<v2>)")
    s.add_argument("--output", required=True, help="the SLHA file")
    for name, what in (("generate", "generate one chunk of a point"), ("emulate", "emulate one chunk of a point")):
        s = steps.add_parser(name, help=what)
        s.add_argument("--point", required=True, help="the point's name")
        s.add_argument("--chunk", type=int, required=True, help="the chunk index (0 .. max/chunk - 1)")
        if name == "generate":
            s.add_argument("--slha", required=True, help="the point's SLHA file")
        else:
            s.add_argument("--input", required=True, help="the chunk's particle-level events")
        s.add_argument("--output", required=True, help="the chunk's event file (.parquet)")
    s = steps.add_parser("decide", help="select a point's chunks so far, CLs, and whether it needs more events")
    s.add_argument("--point", required=True, help="the point's name")
    s.add_argument("--output", required=True, help="the decision (.json)")
    s.add_argument("reco", nargs="+", help="the point's reconstructed chunks 0..k")
    s.add_argument("--method", choices=["fast", "exact"], default="fast", help="limits method (default: %(default)s)")
    s.add_argument(
        "--fallback",
        choices=["exact-converged", "none"],
        default="exact-converged",
        help="what a point gets when the fast method cannot reproduce its likelihood (default: %(default)s)",
    )
    s.add_argument(
        "--verify", choices=["near", "all"], default="near", help="which fits get verified (default: %(default)s)"
    )
    s.add_argument("--fit-maxiter", type=int, metavar="N", help="iteration limit of each fit")
    s.add_argument("--fit-tolerance", type=float, metavar="TOL", help="convergence tolerance of the minimiser")
    s.add_argument("--fit-timeout", type=float, metavar="SECONDS", help="wall-clock bound of each point's fits")
    s = steps.add_parser("round", help="after a round's points are decided: the next round's points")
    s.add_argument("--round", type=int, required=True, help="the round just decided (0: the coarse grid)")
    s.add_argument("--earlier", nargs="*", default=[], help="the round files of rounds 0..round-1")
    s.add_argument("--decisions", nargs="+", required=True, help="the final decisions of every point so far")
    s.add_argument("--output", required=True, help="the round file (.json)")
    s = steps.add_parser("summary", help="every point, its round and verdict, and the contours")
    s.add_argument("--rounds", nargs="+", required=True, help="every round file, in order")
    s.add_argument("--decisions", nargs="+", required=True, help="the final decision of every point")
    s.add_argument("--json", required=True, help="the scan's document (.json)")
    s.add_argument("--csv", required=True, help="one row per point (.csv)")
    s.add_argument("--plot", required=True, help="the plane with points by round and both contours (.png)")


#: This module's subcommands and the functions adding their parsers.
PARSERS: dict[str, AddParser] = {"adaptive": _adaptive_parser}
